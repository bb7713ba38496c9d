"""The tumour statistics (`preprocess.tumor_stats`): the whole detected tumour in 3-D, for the class head."""

import csv

import numpy as np
import pytest

from radpath.contract.model_io import TUMOR_STATS
from radpath.preprocess import TumorSlice, find_tumor, load_case, tumor_stats
from radpath.preprocess.case import Case


def _stat(values: np.ndarray, name: str) -> float:
    return float(values[TUMOR_STATS.index(name)])


def test_one_finite_value_per_name_for_a_found_tumour(case_dir):
    case = load_case(case_dir)
    s = tumor_stats(case)
    assert s.shape == (len(TUMOR_STATS),) and s.dtype == np.float32 and np.isfinite(s).all()
    assert find_tumor(case).found and _stat(s, "found") == 1.0
    assert -4 < _stat(s, "log10_brain_fraction") < 0
    assert 0 <= _stat(s, "across_midline") <= 1 and 0 < _stat(s, "axial_extent") <= 1
    # the detected tumour is FLAIR-bright: its median FLAIR z-score is well above the brain's
    assert _stat(s, "flair_p50") > 1.5


def test_scanner_scale_does_not_change_them(case_dir):
    """Robust z-scores: the same brain stored at another intensity scale gives the same statistics."""
    case = load_case(case_dir)
    scaled = Case(
        case.case_id,
        {k: (v.astype(np.float32) * 7.5 + 30).astype(np.float32) for k, v in case.volumes.items()},
        case.affine,
    )
    a, b = tumor_stats(case), tumor_stats(scaled)
    np.testing.assert_allclose(a, b, atol=0.05)


def test_no_tumour_gives_the_floor_and_zeros(case_dir):
    case = load_case(case_dir)
    none = TumorSlice(index=10, voxels=0, found=False)
    s = tumor_stats(case, none)
    assert _stat(s, "found") == 0.0
    assert _stat(s, "log10_brain_fraction") == pytest.approx(-4.0)
    assert not np.delete(s, TUMOR_STATS.index("log10_brain_fraction")).any()


def test_enhancing_share_follows_the_drawn_enhancement(small_cohort):
    """The generator's enhancing lesions (`appearance.csv`) show a larger enhancing share than the others:
    the statistic measures the sign it is named after."""
    rows = list(csv.DictReader(open(small_cohort / "Segmentation" / "appearance.csv")))
    shares: dict[bool, list[float]] = {True: [], False: []}
    for row in rows:
        if row.get("control") == "1":
            continue
        s = tumor_stats(load_case(small_cohort / "Radiology" / row["case_id"]))
        shares[row["enhancing"] == "1"].append(_stat(s, "enhancing_share"))
    assert shares[True] and shares[False]
    assert np.mean(shares[True]) > 2 * np.mean(shares[False]) + 0.005
