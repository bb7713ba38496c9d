"""What a trained run answers on real scans (no labels: a look, never a score).

    python tests/bench/bench_real_cases.py RUN_DIR REAL_FOLDER [--age-days N]

For every case folder under REAL_FOLDER/Radiology (e.g. the team's `../shared/real`, never shipped),
the answer exactly as a client would get it: the max-tumour slice and its test-time views, the run's
final model with its calibrated temperature (in-process JAX), the quality warnings, and the refer
decision of `contract.refer` with its reasons. Real cases carry no CPM-RadPath label; the point is to
see whether a model trained on synthetic data is confident on data it was not drawn from, and
whether the refer flag catches it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from radpath.contract.model_io import CLASSES, TTA_OFFSETS, fill_ages, round_input, tta_views
from radpath.contract.refer import refer_reasons
from radpath.preprocess import find_tumor, load_case, model_inputs, tumor_stats
from radpath.preprocess.quality import case_warnings
from radpath.train.calibration import views_to_proba
from radpath.train.loop import make_logits_fn
from radpath.train.run import load_calibration, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("real")
    ap.add_argument("--age-days", type=float, help="age given to models trained with age (default: unknown)")
    args = ap.parse_args()
    variables, config = load_model(Path(args.run_dir))
    calib = load_calibration(Path(args.run_dir))
    logits_fn = make_logits_fn(config)
    for case_dir in sorted((Path(args.real) / "Radiology").iterdir()):
        case = load_case(case_dir, age_days=args.age_days)
        tumor = find_tumor(case)
        x = round_input(tta_views(model_inputs(case, TTA_OFFSETS, tumor.index)))
        ages = fill_ages(np.full(len(x), args.age_days or np.nan), len(x))
        stats = np.repeat(tumor_stats(case, tumor)[None], len(x), axis=0) if config.reads_tumor_stats else None
        logits = np.asarray(logits_fn(variables, x, ages, stats))
        p = views_to_proba(logits[None], calib["temperature"])[0]
        probs = {c: float(v) for c, v in zip(CLASSES, p)}
        warnings = [w.as_dict() for w in case_warnings(case)]
        reasons = refer_reasons(probs, calib.get("refer_threshold"), warnings)
        print(
            f"{case.case_id}: {CLASSES[int(p.argmax())]} "
            + " ".join(f"{c} {v:.2f}" for c, v in probs.items())
            + f"; slice {tumor.index} found={tumor.found}; warnings {[w['code'] for w in warnings]}; "
            + ("REFER: " + " | ".join(r.split(":")[0] for r in reasons) if reasons else "stands")
        )


if __name__ == "__main__":
    main()
