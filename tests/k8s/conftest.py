from tests.serving.conftest import model_base  # noqa: F401  (shared session fixture)
