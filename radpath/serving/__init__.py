"""RadPath serving: TensorFlow Serving configuration and the way to run it locally.

`radpath serve` runs `tensorflow_model_server` with these files when the binary is on PATH and
otherwise the built-in server (`serving.local_server`), which implements the same gRPC services and
REST endpoints over the same SavedModels and reads the same models.config.
"""

from pathlib import Path

from radpath.contract.signature import GRPC_MAX_MESSAGE_BYTES

__all__ = ["BATCHING_CONFIG", "CONFIG_DIR", "GRPC_MAX_MESSAGE_BYTES", "MODELS_CONFIG", "MONITORING_CONFIG"]
"""GRPC_MAX_MESSAGE_BYTES is re-exported: one limit for client and server."""

CONFIG_DIR = Path(__file__).parent
MODELS_CONFIG = CONFIG_DIR / "models.config"
BATCHING_CONFIG = CONFIG_DIR / "batching.config"
MONITORING_CONFIG = CONFIG_DIR / "monitoring.config"
