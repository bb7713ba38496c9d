"""The web app's Kubernetes manifests (k8s/web), rendered by real kustomize; tests/k8s validates
every object against the schemas and the pod security settings, this checks what the site needs."""

from __future__ import annotations

import pytest

from tests.k8s.test_manifests import _objects

CMD_FLAGS = {"radpath-web": ["web", "--host", "0.0.0.0", "--workers", "0"], "radpath-web-worker": ["web-worker"]}


@pytest.fixture(scope="module")
def objects():
    return {(o["kind"], o["metadata"]["name"]): o for o in _objects("web")}


def test_site_and_workers_are_separate_deployments_of_one_image(objects):
    images = set()
    for name, flags in CMD_FLAGS.items():
        c = objects[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        args = c["args"]
        assert all(f in args for f in flags), (name, args)
        assert args[args.index("--server") + 1] == "glioma-serving:8500"  # the model server's Service
        env = {e["name"]: e for e in c["env"]}
        assert env["RADPATH_WEB_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "radpath-web",
            "key": "database-url",
        }
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/models"]["readOnly"] is True and "/data" in mounts and "/tmp" in mounts
        images.add(c["image"])
    assert len(images) == 1


def test_site_is_ready_only_when_healthy_and_reachable_through_its_service(objects):
    dep = objects[("Deployment", "radpath-web")]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["env"][1]["valueFrom"]["secretKeyRef"]["key"] == "session-secret"  # replicas share one secret
    svc = objects[("Service", "radpath-web")]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert objects[("PersistentVolumeClaim", "radpath-web-data")]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_health_endpoint_the_probe_uses_exists(client):
    assert client.get("/healthz").json() == {"status": "ok"}
