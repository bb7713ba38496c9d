"""The hostile corpus through the Python API and the CLI: right answer, one line, bounded cost.

Each case must be answered with the expected outcome (loads, or CaseError whose one-line message
matches), in < 5 s and < 500 MB of memory growth, measured in child processes (tests/hardening/
measure.py). Before the reader's limits, the bombs here took 2-4 GB and 16 s, and scl_slope 3e38 or
1e300 voxels loaded silently (then gave NaN probabilities).
"""

from __future__ import annotations

import re

import pytest

from tests.hardening.corpus import entry_json, write_corpus
from tests.hardening.measure import api_in_child, cli_all, cli_in_child

MAX_SECONDS = 5.0
MAX_GROWTH_MB = 500.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("hostile"))


def test_corpus_is_large_and_mostly_hostile(corpus):
    assert len(corpus) >= 50
    assert sum(e.expect is not None for e in corpus) >= 50
    assert any(e.min_growth_mb for e in corpus)  # the memory meter is checked to see real reads
    assert len({e.name for e in corpus}) == len(corpus)


def _check(entry, ok: bool, message: str, problems: list[str]) -> None:
    if entry.expect is None:
        if not ok:
            problems.append(f"{entry.name}: expected to load, got {message!r}")
    elif ok:
        problems.append(f"{entry.name}: loaded, expected an error matching {entry.expect!r}")
    elif "\n" in message.strip() or not re.search(entry.expect, message):
        problems.append(f"{entry.name}: message {message!r} does not match {entry.expect!r} on one line")


def test_python_api(corpus):
    results = api_in_child([entry_json(e) for e in corpus])
    problems: list[str] = []
    for e, r in zip(corpus, results):
        assert r["name"] == e.name
        if r["status"] not in ("ok", "CaseError"):
            problems.append(f"{e.name}: raised {r['status']}: {r['message']}")
            continue
        _check(e, r["status"] == "ok", r["message"], problems)
        if r["seconds"] > MAX_SECONDS or r["growth_mb"] > MAX_GROWTH_MB:
            problems.append(f"{e.name}: {r['seconds']:.2f} s, +{r['growth_mb']:.0f} MB")
        if r["growth_mb"] < e.min_growth_mb:
            problems.append(f"{e.name}: the meter saw +{r['growth_mb']:.0f} MB, expected >= {e.min_growth_mb}")
    worst_t = max(results, key=lambda r: r["seconds"])
    worst_m = max(results, key=lambda r: r["growth_mb"])
    print(
        f"\nPython API, {len(results)} cases: worst time {worst_t['seconds']:.3f} s ({worst_t['name']}), "
        f"worst memory growth {worst_m['growth_mb']:.1f} MB ({worst_m['name']})"
    )
    assert not problems, "\n".join(problems)


def _one_line_error(e, rc, stderr: str, problems: list[str]) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if "Traceback" in stderr or len(set(lines)) != len(lines):
        problems.append(f"{e.name}: traceback or a line printed twice on stderr: {stderr[-800:]}")
    if e.expect is None:
        if rc != 0:
            problems.append(f"{e.name}: exit {rc}, expected 0: {stderr[-300:]}")
    elif rc != 1 or len(lines) != 1 or not lines[0].startswith("radpath inspect: error: "):
        problems.append(f"{e.name}: exit {rc}, stderr {stderr[-500:]!r}; expected exit 1 and one line")
    elif not re.search(e.expect.lstrip("^"), lines[0]):
        problems.append(f"{e.name}: {lines[0]!r} does not match {e.expect!r}")


def test_cli_inspect(corpus):
    """`radpath inspect` on every case: exit 1 and one line `radpath inspect: error: <file>: <problem>`
    for every hostile case (no traceback, no warning printed twice), exit 0 for the rest."""
    entries = [e for e in corpus if e.cli and isinstance(e.source, str)]
    assert len(entries) >= 50 and entries[0].expect is None
    results = cli_in_child([entry_json(e) for e in entries])
    problems: list[str] = []
    for e, r in zip(entries, results):
        _one_line_error(e, r["rc"], r["stderr"], problems)
        if r["seconds"] > MAX_SECONDS or r["growth_mb"] > MAX_GROWTH_MB:
            problems.append(f"{e.name}: {r['seconds']:.2f} s, +{r['growth_mb']:.0f} MB")
        if r["growth_mb"] < e.min_growth_mb:
            problems.append(f"{e.name}: the meter saw +{r['growth_mb']:.0f} MB, expected >= {e.min_growth_mb}")
    worst_t = max(results, key=lambda r: r["seconds"])
    worst_m = max(results, key=lambda r: r["growth_mb"])
    print(
        f"\nCLI, {len(results)} cases: worst time {worst_t['seconds']:.3f} s ({worst_t['name']}), "
        f"worst memory growth {worst_m['growth_mb']:.1f} MB ({worst_m['name']})"
    )
    assert not problems, "\n".join(problems)


PROCESS_CASES = (
    "valid",
    "bomb_1024x1024x256_float64",
    "bomb_case_total",
    "extension_offset_1GiB",
    "dim0_9",
    "fifo_as_sequence",
    "root_folder",
    "scl_slope_3e38",
    "name_300_chars",
)


def test_cli_entry_point_in_own_process(corpus):
    """The real entry point, one process per case (a sample: start-up costs 1-5 s a process): exit
    code and stderr across the process boundary, and that process's peak RSS."""
    by_name = {e.name: e for e in corpus}
    entries = [by_name[n] for n in PROCESS_CASES]
    results = cli_all([e.source for e in entries])
    baseline = results[0]["peak_mb"]
    problems: list[str] = []
    for e, r in zip(entries, results):
        _one_line_error(e, r["rc"], r["stderr"], problems)
        if not r["peak_mb"] > 0:
            problems.append(f"{e.name}: no peak RSS reported")
        if r["seconds"] > 60 or r["peak_mb"] - baseline > MAX_GROWTH_MB:
            problems.append(
                f"{e.name}: {r['seconds']:.2f} s, peak {r['peak_mb']:.0f} MB (valid case {baseline:.0f} MB)"
            )
    print(
        f"\nCLI processes: peak RSS {max(r['peak_mb'] for r in results):.0f} MB "
        f"(valid case {baseline:.0f} MB), slowest {max(r['seconds'] for r in results):.1f} s with start-up"
    )
    assert not problems, "\n".join(problems)
