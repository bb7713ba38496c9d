"""A small kustomize renderer for the subset our manifests use, so tests run without kubectl.

Supported: `resources` (files and directories), `configMapGenerator` (files, literals; with
`disableNameSuffixHash: true`), `labels` (metadata labels), `images` (newName/newTag), `patches`
(strategic-merge patch files: maps merge, lists of named items merge by name, null deletes).
Anything else raises, so the renderer never silently differs from kustomize. Where `kubectl` is
installed, tests also compare against `kubectl kustomize`.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions", "labels", "images", "patches"}
POD_SPEC_PATHS = {"Deployment": ("spec", "template", "spec"), "Job": ("spec", "template", "spec")}


def _load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = _merge(out[k], v)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            for i, existing in enumerate(out):
                if existing["name"] == item["name"]:
                    out[i] = _merge(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _pod_spec(obj: dict) -> dict | None:
    path = POD_SPEC_PATHS.get(obj.get("kind"))
    node = obj
    for key in path or ():
        node = node.get(key, {})
    return node if path else None


def render(directory: str | Path) -> list[dict]:
    directory = Path(directory)
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - SUPPORTED
    if unknown:
        raise NotImplementedError(f"{directory}: kustomize fields {sorted(unknown)} not supported by kustomize_lite")
    objects: list[dict] = []
    for res in k.get("resources", []):
        p = directory / res
        objects.extend(render(p) if p.is_dir() else _load_docs(p))
    options = k.get("generatorOptions", {})
    for gen in k.get("configMapGenerator", []):
        if not options.get("disableNameSuffixHash"):
            raise NotImplementedError("configMapGenerator needs generatorOptions.disableNameSuffixHash: true here")
        data = {}
        for f in gen.get("files", []):
            key, _, path = f.rpartition("=") if "=" in f else (Path(f).name, "", f)
            data[key] = (directory / path).read_text()
        for lit in gen.get("literals", []):
            key, value = lit.split("=", 1)
            data[key] = value
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise NotImplementedError(f"only file patches are supported, got {patch}")
        for doc in _load_docs(directory / patch["path"]):
            targets = [i for i, o in enumerate(objects) if o["kind"] == doc["kind"]
                       and o["metadata"]["name"] == doc["metadata"]["name"]]
            if len(targets) != 1:
                raise ValueError(f"patch {patch['path']} matches {len(targets)} objects")
            objects[targets[0]] = _merge(objects[targets[0]], doc)
    for image in k.get("images", []):
        for obj in objects:
            spec = _pod_spec(obj)
            for c in (spec or {}).get("containers", []) + (spec or {}).get("initContainers", []):
                name, _, _tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', _tag)}"
    for group in k.get("labels", []):
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    return objects
