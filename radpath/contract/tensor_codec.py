"""numpy <-> TensorProto without TensorFlow, for any TensorProto class with TensorFlow's fields.

Duck-typed on the message: the client fills `contract.tfs_api` messages, the built-in server fills
tensorflow-serving-api's; both have the same fields and numbers. Numeric arrays travel as
`tensor_content` (raw little-endian bytes, what `tf.make_tensor_proto` writes for an ndarray), strings
as `string_val`. Reading also accepts the typed `*_val` fields, including TensorFlow's rule that a
single value fills the whole declared shape; `max_elements` bounds that before any memory is taken.

The annotations name our `tensor_pb2.TensorProto` (its stub, tensor_pb2.pyi, lists the fields);
TensorFlow's class, untyped for mypy, passes at run time because it has the same fields.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from radpath.contract.tfs_api import tensor_pb2

# DataType enum value -> (numpy dtype, the repeated *_val field that can carry it)
_DTYPES: dict[tensor_pb2.DataType, tuple[np.dtype, str]] = {
    tensor_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    tensor_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    tensor_pb2.DT_HALF: (np.dtype(np.float16), "half_val"),
    tensor_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    tensor_pb2.DT_INT16: (np.dtype(np.int16), "int_val"),
    tensor_pb2.DT_INT8: (np.dtype(np.int8), "int_val"),
    tensor_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    tensor_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    tensor_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    tensor_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    tensor_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    tensor_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
}
_BY_NUMPY = {dt: code for code, (dt, _) in _DTYPES.items()}


Proto = TypeVar("Proto", bound=tensor_pb2.TensorProto)


class TensorCodecError(ValueError):
    """A TensorProto that does not describe a tensor (wrong size, unknown dtype, too large)."""


def fill_tensor(proto: Proto, array: np.ndarray) -> Proto:
    """Write `array` into an existing TensorProto (e.g. `request.inputs["image"]`) and return it.
    Filling in place saves a copy of the megabytes a batch of images weighs."""
    array = np.asarray(array)
    proto.Clear()
    for s in array.shape:
        proto.tensor_shape.dim.add(size=int(s))
    if array.dtype.kind in "OSU":
        proto.dtype = tensor_pb2.DT_STRING
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1))
        return proto
    code = _BY_NUMPY.get(array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype)
    if code is None:
        raise TensorCodecError(f"no TensorProto dtype for numpy {array.dtype}")
    proto.dtype = code
    proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return proto


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A new `contract.tfs_api` TensorProto holding `array`."""
    return fill_tensor(tensor_pb2.TensorProto(), array)


def from_proto(
    proto: tensor_pb2.TensorProto, max_elements: int | None = None, content: bytes | memoryview | None = None
) -> np.ndarray:
    """numpy array from a TensorProto (any class with TensorFlow's fields). `content`: its
    tensor_content, where the caller cut it out of the wire bytes (no copy; a read-only result).

    Raises TensorCodecError for an unknown dtype, a value count that fits neither the shape nor
    TensorFlow's one-value broadcast, or more than `max_elements` elements."""
    shape = [int(d.size) for d in proto.tensor_shape.dim]
    if any(s < 0 for s in shape):
        raise TensorCodecError(f"tensor shape {shape} has a negative dimension")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if max_elements is not None and count > max_elements:
        raise TensorCodecError(f"tensor of shape {shape} has {count} elements, more than the {max_elements} allowed")
    if proto.dtype == tensor_pb2.DT_STRING:
        values = list(proto.string_val)
        if len(values) == 1 and count > 1:
            values = values * count
        if len(values) != count:
            raise TensorCodecError(f"tensor holds {len(values)} strings for shape {shape}")
        return np.array(values, dtype=object).reshape(shape)
    if proto.dtype not in _DTYPES:
        raise TensorCodecError(f"unsupported tensor dtype {proto.dtype} (DataType enum value)")
    dtype, field = _DTYPES[proto.dtype]
    if content is None:
        content = proto.tensor_content  # read once: each read of a bytes field copies it (upb)
    if content:
        if len(content) != count * dtype.itemsize:
            raise TensorCodecError(
                f"tensor_content holds {len(content)} bytes; shape {shape} of {dtype} needs {count * dtype.itemsize}"
            )
        return np.frombuffer(content, dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
    raw = getattr(proto, field)
    if field == "half_val":
        data = np.array(raw, np.uint16).view(np.float16)
    else:
        data = np.array(raw, dtype)
    if data.size == 1 and count > 1:
        data = np.full(count, data[0], dtype)
    if data.size != count:
        raise TensorCodecError(f"tensor holds {data.size} values for shape {shape}")
    return data.reshape(shape)
