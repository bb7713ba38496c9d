"""Which temperature rule calibrates new cases: the free fit on the held-out split, or T >= 1.

    python tests/bench/bench_calibration_rule.py --train-cohort COHORT --fresh FRESH_COHORT RUN [RUN ...]

For finished `radpath train` runs (each with its held-out split) and a fresh labelled cohort drawn
like the training one but never seen: the logits on both (cached as RUN/bench_*_logits.npy), then
per run the temperature fitted freely and with the floor (`train.calibration.MIN_TEMPERATURE`), the
ECE and NLL on the fresh cases under each, the ECE a perfectly calibrated model would show on that
many cases, the best temperature on the fresh cases themselves, and the cross-fitted ECE on the
held-out split under each rule. No retraining. Synthetic data: no clinical meaning.
Run it under the shared CPU lock (`flock /tmp/radpath-cpu.lock ...`).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--train-cohort", required=True, help="the cohort the runs were trained on (held-out cases)")
    ap.add_argument("--fresh", required=True, help="a labelled cohort none of the runs saw")
    ap.add_argument("--cache", help="examples cache (default: each run's cache/)")
    args = ap.parse_args()

    from radpath.preprocess.cohort import read_cohort
    from radpath.train import calibration as cal
    from radpath.train.examples import Examples, build_examples
    from radpath.train.loop import predict_logits
    from radpath.train.run import load_model

    fresh_entries = read_cohort(Path(args.fresh)).labelled()
    by_id = {e.case_id: e for e in read_cohort(Path(args.train_cohort)).labelled()}
    fresh_by_cache: dict[Path, Examples] = {}  # with --cache every run shares one build of the fresh cohort
    print(
        "| run | T free | ECE fresh, free -> floored | NLL fresh, free -> floored | ECE floor fresh | "
        "best T fresh | cross-fitted ECE held-out, free -> floored |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in map(Path, args.runs):
        cache = Path(args.cache) if args.cache else run / "cache"
        ids = [r["CPM_RadPath_2019_ID"] for r in csv.DictReader((run / "predictions_holdout.csv").open())]
        held = build_examples([by_id[i] for i in ids], cache, progress=False)
        if cache not in fresh_by_cache:
            fresh_by_cache[cache] = build_examples(fresh_entries, cache, progress=False)
        fresh = fresh_by_cache[cache]
        paths = {name: run / f"bench_{name}_logits.npy" for name in ("holdout", "fresh")}
        if not all(p.is_file() for p in paths.values()):
            variables, config = load_model(run)
            for name, ex in (("holdout", held), ("fresh", fresh)):
                if not paths[name].is_file():
                    np.save(paths[name], predict_logits(variables, config, ex))
        logits = {name: np.load(p) for name, p in paths.items()}
        rules = (0.0, cal.MIN_TEMPERATURE)  # free, floored
        temps = [cal.fit_temperature(logits["holdout"], held.labels, lowest) for lowest in rules]
        fresh_p = [cal.views_to_proba(logits["fresh"], t) for t in temps]
        crossed = [
            cal.cross_fitted(logits["holdout"], held.labels, cal.REFER_MAX_ERROR, seed=0, lowest=lowest)
            for lowest in rules
        ]
        ece = [cal.expected_calibration_error(p, fresh.labels) for p in fresh_p]
        nll = [cal.nll(p, fresh.labels) for p in fresh_p]
        best = cal.fit_temperature(logits["fresh"], fresh.labels, lowest=0.0)
        print(
            f"| {run.name} | {temps[0]:.3f} | {ece[0]:.3f} -> {ece[1]:.3f} | {nll[0]:.3f} -> {nll[1]:.3f} | "
            f"{cal.ece_noise_floor(fresh_p[1]):.3f} | {best:.3f} | "
            f"{crossed[0]['ece']:.3f} -> {crossed[1]['ece']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
