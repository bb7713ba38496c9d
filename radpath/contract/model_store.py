"""The model store: where the exporter writes versions and where the servers read them.

    <model_base>/<name>/<version>/saved_model.pb, variables/, assets.extra/
                                  assets.extra/tf_serving_warmup_requests, radpath.json, model_card.md
    <model_base>/<name>/.tmp-<version>-<pid>/   an export in progress (never served)

A version is complete when its integer folder holds `saved_model.pb` (as TF Serving sees it; the
exporter writes under a temporary name and renames, so a complete folder never changes afterwards;
a folder that is complete but does not load is the registry's to report). The writer (`train.export`) and the reader
(`serving.model_registry`) both use `complete_versions`, so they agree on what is there.
"""

from __future__ import annotations

from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"
VARIABLES_DIR = "variables"
ASSETS_EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
METADATA_FILE = "radpath.json"
MODEL_CARD_FILE = "model_card.md"
TEMP_PREFIX = ".tmp-"


def model_dir(model_base: str | Path, name: str) -> Path:
    return Path(model_base) / name


def version_dir(model_dir_: str | Path, version: int) -> Path:
    return Path(model_dir_) / str(version)


def temp_version_dir(model_dir_: str | Path, version: int, pid: int) -> Path:
    """Where an export writes before the atomic rename (ignored by every reader: not an integer)."""
    return Path(model_dir_) / f"{TEMP_PREFIX}{version}-{pid}"


def is_complete(path: Path) -> bool:
    return path.name.isdigit() and path.is_dir() and (path / SAVED_MODEL_FILE).is_file()


def complete_versions(model_dir_: str | Path) -> list[int]:
    """Sorted version numbers of the complete versions under MODEL_BASE/NAME (empty if none)."""
    base = Path(model_dir_)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if is_complete(p))


def next_version(model_dir_: str | Path) -> int:
    existing = complete_versions(model_dir_)
    return existing[-1] + 1 if existing else 1
