"""Read serving/models.config (TF Serving's ModelServerConfig text proto) and the batching file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from radpath.contract.errors import RadPathError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: Path
    policy: str  # "latest", "all" or "specific"
    num_versions: int = 1
    specific: tuple[int, ...] = ()


def read_models_config(path: str | Path, model_base: str | Path | None = None) -> list[ModelEntry]:
    """Models to serve. With `model_base`, each base_path becomes model_base/<name> (local runs)."""
    path = Path(path)
    try:
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except (OSError, text_format.ParseError) as exc:
        raise RadPathError(f"{path}: not a valid TF Serving model config ({exc})") from None
    entries = []
    for c in config.model_config_list.config:
        base = Path(model_base) / c.name if model_base else Path(c.base_path)
        which = c.model_version_policy.WhichOneof("policy_choice") or "latest"
        if which == "latest":
            entries.append(ModelEntry(c.name, base, "latest", max(1, c.model_version_policy.latest.num_versions)))
        elif which == "specific":
            entries.append(
                ModelEntry(c.name, base, "specific", specific=tuple(c.model_version_policy.specific.versions))
            )
        else:
            entries.append(ModelEntry(c.name, base, "all"))
    if not entries:
        raise RadPathError(f"{path}: model_config_list names no model")
    return entries


def write_models_config(entries: list[ModelEntry], path: Path) -> None:
    """A models.config for `tensorflow_model_server` with the local base paths."""
    config = model_server_config_pb2.ModelServerConfig()
    for e in entries:
        c = config.model_config_list.config.add(
            name=e.name, base_path=str(e.base_path.resolve()), model_platform="tensorflow"
        )
        if e.policy == "latest":
            c.model_version_policy.latest.num_versions = e.num_versions
        elif e.policy == "specific":
            c.model_version_policy.specific.versions.extend(e.specific)
        else:
            c.model_version_policy.all.SetInParent()
    path.write_text(text_format.MessageToString(config))


def read_batching_config(path: str | Path) -> dict:
    """TF Serving batching parameters file -> {name: N} for `name { value: N }` lines, plus
    `allowed_batch_sizes` (a repeated field) as a list."""
    text = "\n".join(line.split("#")[0] for line in Path(path).read_text().splitlines())
    out: dict = {m.group(1): int(m.group(2)) for m in re.finditer(r"(\w+)\s*\{\s*value:\s*(\d+)\s*\}", text)}
    out["allowed_batch_sizes"] = [int(v) for v in re.findall(r"allowed_batch_sizes:\s*(\d+)", text)]
    return out
