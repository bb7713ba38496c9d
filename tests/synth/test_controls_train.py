"""A cohort with tumour-free controls trains: the controls have no class, so `read_cohort(...).labelled()`
leaves them out and the run reports them as not used (they are never silently given a class)."""

import pytest

from radpath.synth.cohort import write_synthetic_cohort
from radpath.train.config import TrainConfig


@pytest.mark.slow  # a real (tiny) training run: about a minute of CPU
def test_training_skips_and_reports_controls(tmp_path):
    pytest.importorskip("jax")
    from radpath.train.run import run_training

    cohort = tmp_path / "c"
    plans = write_synthetic_cohort(
        cohort, cases=9, seed=12, shape=(64, 64, 42), workers=1, progress=False, style="legacy", controls=2
    )
    controls = {p.case_id for p in plans if p.control}
    config = TrainConfig(width=2, stages=(1, 1, 1, 1), epochs=1, batch_size=4, warmup_epochs=0, learning_rate=1e-2)
    report = run_training(cohort, tmp_path / "run", config, folds=0, holdout=0.0, devices=1, progress=False)
    not_used = {r["case_id"]: r["reason"] for r in report["data"]["cases_not_used"]}
    assert set(not_used) == controls and all("no class" in r for r in not_used.values())
    assert report["data"]["cases_used"] == 9
    assert (tmp_path / "run" / "model" / "variables.msgpack").is_file()
