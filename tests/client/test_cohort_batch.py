import csv
import threading
import time

import pytest

from radpath.cli import EXIT_CASES_FAILED, main
from radpath.client.cohort_batch import classify_cohort, parse_shard, shard_of
from radpath.contract.errors import RadPathError
from radpath.contract.predictions_csv import merge_predictions, prediction_header
from radpath.serving.local_server import Server
from radpath.serving.model_config import ModelEntry
from tests.conftest import copy_case


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def server(model_base):
    s = Server(
        [ModelEntry("glioma", model_base / "glioma", "latest", 2)],
        0,
        0,
        batching={"max_batch_size": 16, "batch_timeout_micros": 2000},
        host="127.0.0.1",
    ).start()
    yield f"127.0.0.1:{s.grpc_port}"
    s.stop()


def test_cohort_run_resumes_without_duplicates(small_cohort, server, tmp_path):
    out = tmp_path / "pred.csv"
    s = classify_cohort(small_cohort, out, server, progress=False)
    assert (s.written, s.skipped_done, s.failed, s.stopped) == (12, 0, [], None)
    rows = _rows(out)
    assert rows[0] == prediction_header("CPM_RadPath_2019_ID") and len(rows) == 13
    assert {r[5] for r in rows[1:]} <= {"true", "false"} and all(r[6].isdigit() for r in rows[1:])
    # a killed run: last rows lost, a torn half row at the end
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:-3]) + text[-3][:10])
    s = classify_cohort(small_cohort, out, server, progress=False)
    assert (s.written, s.skipped_done) == (3, 9)
    rows = _rows(out)
    assert len(rows) == 13 and len({r[0] for r in rows[1:]}) == 12
    assert classify_cohort(small_cohort, out, server, progress=False).written == 0


def test_bad_case_is_listed_the_rest_go_on_and_the_exit_code_says_so(small_cohort, server, tmp_path, capsys):
    root = tmp_path / "c"
    (root / "Radiology").mkdir(parents=True)
    cases = sorted((small_cohort / "Radiology").iterdir())[:3]
    for c in cases:
        copy_case(c, root / "Radiology")
    next((root / "Radiology" / cases[1].name).glob("*_t1.nii.gz")).write_bytes(b"garbage")
    out = tmp_path / "p.csv"
    code = main(["classify-cohort", str(root), "--out", str(out), "--server", server, "--quiet"])
    assert code == EXIT_CASES_FAILED and "1 cases failed" in capsys.readouterr().err
    assert len(_rows(out)) == 3
    failed = _rows(tmp_path / "p.csv.failed.csv")
    assert failed[1][0] == cases[1].name and "_t1.nii.gz" in failed[1][1]


def test_hostile_case_ids_survive_a_resumed_run_merge_and_evaluate(small_cohort, server, tmp_path, capsys):
    root = tmp_path / "c"
    (root / "Radiology").mkdir(parents=True)
    ids = ["a,b", 'q"uote', "=HYPERLINK(1)", "-1"]
    for cid, c in zip(ids, sorted((small_cohort / "Radiology").iterdir())):
        copy_case(c, root / "Radiology", cid)
    out = tmp_path / "p.csv"
    assert classify_cohort(root, out, server, progress=False).written == 4
    assert classify_cohort(root, out, server, progress=False).written == 0  # resume reads it back
    cells = [r[0] for r in _rows(out)[1:]]
    assert sorted(cells) == sorted(["a,b", 'q"uote', "'=HYPERLINK(1)", "'-1"])  # formulas neutralised
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "CPM_RadPath_2019_ID,class\n"
        + "".join(f'"{i.replace(chr(34), 2 * chr(34))}",A\n' for i in ids)
        + "UNGRADED_1,\n"
    )
    assert main(["merge-predictions", str(tmp_path / "m.csv"), str(out), "--labels", str(labels), "--json"]) == 0
    captured = capsys.readouterr()
    assert '"n": 4' in captured.out and "1 rows of" in captured.err and "no class" in captured.err


def test_shards_cover_every_case_exactly_once(small_cohort, server, tmp_path):
    ids = sorted(p.name for p in (small_cohort / "Radiology").iterdir())
    for n in (1, 2, 3, 5):
        assert sorted(i for k in range(n) for i in ids if shard_of(i, n) == k) == ids
    single = tmp_path / "all.csv"
    classify_cohort(small_cohort, single, server, progress=False)
    parts = []
    for k in range(3):
        parts.append(tmp_path / f"shard{k}.csv")
        classify_cohort(small_cohort, parts[-1], server, shard=f"{k}/3", progress=False)
    merged = tmp_path / "merged.csv"
    assert merge_predictions(merged, parts) == 12
    assert sorted(_rows(merged)[1:]) == sorted(_rows(single)[1:])
    with pytest.raises(RadPathError, match="appears in both"):
        merge_predictions(tmp_path / "x.csv", [parts[0], parts[0]])
    with pytest.raises(RadPathError, match="expected I/N"):
        parse_shard("3")


def test_server_stopping_mid_cohort_then_rerun_completes(small_cohort, model_base, tmp_path):
    entries = [ModelEntry("glioma", model_base / "glioma", "latest", 2)]
    first = Server(entries, 0, 0, host="127.0.0.1").start()
    port = first.grpc_port
    out = tmp_path / "p.csv"
    result = {}
    t = threading.Thread(
        target=lambda: result.setdefault(
            "s",
            classify_cohort(small_cohort, out, f"127.0.0.1:{port}", workers=1, retries=2, timeout=5, progress=False),
        )
    )
    t.start()
    while not out.exists() or len(_rows(out)) < 4:
        time.sleep(0.05)
    first.stop()
    t.join(timeout=120)
    s = result["s"]
    assert s.stopped and "unavailable" in s.stopped and s.written < 12
    second = Server(entries, port, 0, host="127.0.0.1").start()
    try:
        s2 = classify_cohort(small_cohort, out, f"127.0.0.1:{port}", progress=False)
    finally:
        second.stop()
    rows = _rows(out)[1:]
    assert s2.stopped is None and len(rows) == 12 and len({r[0] for r in rows}) == 12
