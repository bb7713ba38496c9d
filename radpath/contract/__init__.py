"""What crosses the stages, decided once: every stage imports it, none restates it.

- `model_io`: model input shape, channel order, dtype and rounding, the classes, the test-time
  views, the age input's fill; one-file change for the input size (`IMAGE_SIZE`)
- `signature`: the SavedModel signature: its name, input and output names, the model name; one-file
  change for the signature's input name (`IMAGE_INPUT`)
- `model_store`: the model store layout and what a complete version is
- `predictions_csv`: the challenge CSV: header, write, read, merge, formula neutralising; one-file
  change for the CSV header (`prediction_header`)
- `metrics`: the challenge metrics (F1 micro, kappa, balanced accuracy, mean)
- `tensor_codec`: numpy <-> TensorProto, without TensorFlow
- `tfs_api`: TF Serving's gRPC messages and services, without TensorFlow

Light by design: numpy, protobuf and grpcio only; it never imports TensorFlow, JAX or Flax, so the
client install (see README) carries none of them.
"""
