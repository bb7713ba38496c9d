"""The Indexed Job's path, with the built-in server standing in for the Service: N shard processes
(as the Job's pods run them), then the merge step; the result equals a single-process run."""

import csv
import subprocess
import sys

from radpath.client.cohort_batch import shard_of
from radpath.serving.local_server import Server
from radpath.serving.model_config import ModelEntry
from tests.k8s.test_manifests import _objects


def _rows(p):
    with open(p, newline="") as f:
        return list(csv.reader(f))


def test_shard_processes_then_merge_equal_single_run(small_cohort, model_base, tmp_path):
    job = _objects("batch")[0]
    shards = int(
        next(e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "SHARDS")
    )
    ids = sorted(p.name for p in (small_cohort / "Radiology").iterdir())
    assert sorted(i for k in range(shards) for i in ids if shard_of(i, shards) == k) == ids  # each case once

    server = Server([ModelEntry("glioma", model_base / "glioma", "latest", 2)], 0, 0, host="127.0.0.1").start()
    target = f"127.0.0.1:{server.grpc_port}"
    try:
        cli = [sys.executable, "-m", "radpath"]
        procs = [
            subprocess.Popen(
                cli
                + [
                    "classify-cohort",
                    str(small_cohort),
                    "--out",
                    str(tmp_path / f"predictions-shard-{k}-of-{shards}.csv"),
                    "--shard",
                    f"{k}/{shards}",
                    "--server",
                    target,
                    "--quiet",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(shards)
        ]
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-2000:]
        subprocess.run(
            cli
            + [
                "classify-cohort",
                str(small_cohort),
                "--out",
                str(tmp_path / "single.csv"),
                "--server",
                target,
                "--quiet",
            ],
            check=True,
            capture_output=True,
        )
    finally:
        server.stop()
    labels = small_cohort / "training_data_classification_labels.csv"
    parts = sorted(str(p) for p in tmp_path.glob("predictions-shard-*.csv"))
    merged = subprocess.run(
        cli + ["merge-predictions", str(tmp_path / "predictions.csv"), *parts, "--labels", str(labels), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"n": 12' in merged.stdout
    assert sorted(_rows(tmp_path / "predictions.csv")[1:]) == sorted(_rows(tmp_path / "single.csv")[1:])
