"""TF Serving's public gRPC API, the part a client uses, without TensorFlow.

No maintained package ships TF Serving's protos without TensorFlow (`tensorflow-serving-api`
requires it, about 1.5 GB), so `tensor.proto` and `serving_apis.proto` here restate the messages
the client sends and reads with TF Serving's package, message and service names and field numbers:
the bytes on the wire are identical (tests/contract/test_tfs_api.py checks both directions against
tensorflow-serving-api where installed). `scripts/gen_protos` regenerates the modules.

The generated classes live in `POOL`, a private descriptor pool: their full names are TensorFlow's,
and a process that also imports tensorflow-serving-api (the built-in server) would otherwise see
two definitions of `tensorflow.TensorProto` in protobuf's default pool.

    from radpath.contract.tfs_api import serving_apis_pb2 as apis, serving_apis_pb2_grpc as services, tensor_pb2
"""

from google.protobuf import any_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
for _wkt in (any_pb2, wrappers_pb2):  # the well-known types serving_apis.proto imports
    POOL.AddSerializedFile(_wkt.DESCRIPTOR.serialized_pb)
