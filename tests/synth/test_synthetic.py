from dataclasses import replace

import nibabel as nib
import numpy as np

from radpath.synth.cohort import REAL_COUNTS, plan_cohort, write_synthetic_cohort
from radpath.synth.style import STYLES


def test_real_class_imbalance_by_default():
    plans = plan_cohort(221, seed=0)
    counts = {c: sum(p.label == c for p in plans) for c in "AOG"}
    assert counts == REAL_COUNTS
    assert len({p.case_id for p in plans}) == 221
    ages = {c: np.median([p.age_days / 365.25 for p in plans if p.label == c]) for c in "AOG"}
    assert ages["A"] < ages["O"] < ages["G"]
    lookalikes = sum(p.appearance != p.label for p in plans)
    assert 2 <= lookalikes <= 25  # some cases look like another class


def test_deterministic_per_seed_and_worker_count(tmp_path):
    a = write_synthetic_cohort(tmp_path / "a", cases=3, seed=4, shape=(48, 48, 32), workers=1, progress=False)
    b = write_synthetic_cohort(tmp_path / "b", cases=3, seed=4, shape=(48, 48, 32), workers=2, progress=False)
    c = write_synthetic_cohort(tmp_path / "c", cases=3, seed=5, shape=(48, 48, 32), workers=1, progress=False)
    assert a == b and a != c
    for p in a:
        for seq in ("flair", "t1", "t1ce", "t2"):
            fa = tmp_path / "a" / "Radiology" / p.case_id / f"{p.case_id}_{seq}.nii.gz"
            fb = tmp_path / "b" / "Radiology" / p.case_id / f"{p.case_id}_{seq}.nii.gz"
            assert fa.read_bytes() == fb.read_bytes()
    la = (tmp_path / "a" / "training_data_classification_labels.csv").read_text()
    assert la == (tmp_path / "b" / "training_data_classification_labels.csv").read_text()
    assert la.splitlines()[0] == "CPM_RadPath_2019_ID,class,age_in_days"


def test_files_look_like_real_brats_files(tmp_path):
    """The BraTS-like corner of the space (int16, exactly-zero background): the quirks real files have."""
    bratslike = replace(
        STYLES["broad"],
        name="bratslike",
        dtypes=(("int16", 1.0),),
        backgrounds=(("zero", 1.0),),
        negatives=(0.0005, 0.001),
    )
    root = tmp_path / "c"
    write_synthetic_cohort(root, cases=2, seed=11, shape=(96, 96, 62), progress=False, style=bratslike)
    small_cohort = root
    case = sorted((small_cohort / "Radiology").iterdir())[0]
    scales = []
    for seq in ("flair", "t1", "t1ce", "t2"):
        img = nib.load(str(case / f"{case.name}_{seq}.nii.gz"))
        data = np.asanyarray(img.dataobj)
        assert data.dtype == np.int16
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        brain = data[data != 0]
        assert (brain < 0).sum() > 0  # a few slightly negative voxels
        assert data.max() > 1.5 * np.percentile(brain, 99.5)  # bright outliers
        scales.append(np.median(brain))
    assert len(set(np.round(scales, -1))) == 4  # each scan has its own scale
    masks = [np.asanyarray(nib.load(str(case / f"{case.name}_{s}.nii.gz")).dataobj) != 0 for s in ("flair", "t2")]
    assert 0 < (masks[0] ^ masks[1]).sum() < 0.05 * masks[0].sum()  # masks differ a little
    assert (small_cohort / "SYNTHETIC.md").read_text().startswith("# Synthetic cohort: NOT patient data")
    seg = np.asanyarray(nib.load(str(small_cohort / "Segmentation" / f"{case.name}_seg.nii.gz")).dataobj)
    assert set(np.unique(seg)) <= {0, 1, 2, 4} and seg.max() > 0
