"""RadPath serving: TensorFlow Serving configuration and the way to run it locally.

`radpath serve` runs `tensorflow_model_server` with these files when the binary is on PATH and
otherwise the built-in server (`serving.local_server`), which implements the same gRPC services and
REST endpoints over the same SavedModels and reads the same models.config.
"""
from pathlib import Path

CONFIG_DIR = Path(__file__).parent
MODELS_CONFIG = CONFIG_DIR / "models.config"
BATCHING_CONFIG = CONFIG_DIR / "batching.config"
MONITORING_CONFIG = CONFIG_DIR / "monitoring.config"
from contract.signature import GRPC_MAX_MESSAGE_BYTES  # noqa: E402,F401  (one limit for client and server)
