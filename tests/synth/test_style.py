"""Styles: ranges honoured (the drawn FLAIR/T2 conspicuity is realised), pinned ranges, file quirks
that `preprocess.load_case` must read, tumour-free controls, and the CLI's one-line errors."""

import csv
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from radpath.cli import main
from radpath.preprocess import load_case
from radpath.preprocess.cohort import read_cohort
from radpath.synth.cohort import plan_cohort, save_ras, synthesize_case, write_synthetic_cohort
from radpath.synth.style import BACKGROUNDS, STYLES, Style, SynthSettingsError, get_style

SHAPE = (64, 64, 42)


def _pinned(background: str, dtype: str = "int16", **ranges) -> Style:
    return replace(
        STYLES["broad"],
        name=f"pinned-{background}-{dtype}",
        backgrounds=((background, 1.0),),
        dtypes=((dtype, 1.0),),
        **ranges,
    )


@pytest.mark.parametrize("style", ["subtle", "heldout", "train"])
def test_drawn_conspicuity_within_range_and_realised(style):
    """The realised FLAIR and T2 tumour robust z (brain median and IQR) are the drawn values, and the
    drawn values lie in the style's ranges, whatever the contrast family, blur, noise and file quirks."""
    st = STYLES[style]
    for plan in plan_cohort(6, seed=3):
        _, seg, info = synthesize_case(plan, 3, SHAPE, style=style)
        assert seg.max() > 0 and info["style"] == style
        assert st.flair_z[0] <= info["flair_z_target"] <= st.flair_z[1]
        assert st.t2_z[0] <= info["t2_z_target"] <= st.t2_z[1]
        if info["tumor_fraction"] < 0.15:  # beyond, the lesion moves the brain's own statistics
            assert abs(info["flair_z"] - info["flair_z_target"]) < 0.15, info
            assert abs(info["t2_z"] - info["t2_z_target"]) < 0.15, info


@pytest.mark.parametrize("level", [1.5, 3.0, 6.0])
def test_pinned_flair_z_changes_only_conspicuity(level):
    """`replace(STYLES["broad"], flair_z=(x, x))` (what the detection benchmark does): the same lesion,
    brain and file quirks at every level; only the FLAIR lesion contrast moves."""
    plan = plan_cohort(3, seed=8)[0]
    ref_vol, ref_seg, ref_info = synthesize_case(plan, 8, SHAPE, style=replace(STYLES["broad"], flair_z=(4.0, 4.0)))
    vol, seg, info = synthesize_case(plan, 8, SHAPE, style=replace(STYLES["broad"], flair_z=(level, level)))
    assert np.array_equal(seg, ref_seg)
    assert abs(info["flair_z"] - level) < 0.1
    for key in ("dtype", "background", "contrast_family", "t2_z", "lesion_ml"):
        assert info[key] == ref_info[key]
    assert np.array_equal(vol["t1"], ref_vol["t1"])


def test_deterministic_and_same_brain_in_every_style():
    plan = plan_cohort(3, seed=2)[1]
    a = synthesize_case(plan, 2, SHAPE, style="heldout")
    b = synthesize_case(plan, 2, SHAPE, style="heldout")
    assert all(np.array_equal(a[0][k], b[0][k]) for k in a[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    _, _, c = synthesize_case(plan, 2, SHAPE, style="train", with_tumor=False)
    _, _, d = synthesize_case(plan, 2, SHAPE, style="heldout", with_tumor=False)
    assert np.isnan(c["flair_z"]) and np.isnan(d["flair_z"])


@pytest.mark.parametrize("background", BACKGROUNDS)
@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_every_file_quirk_is_written_and_readable(tmp_path, background, dtype):
    style = _pinned(background, dtype)
    plan = plan_cohort(3, seed=4)[0]
    volumes, seg, info = synthesize_case(plan, 4, SHAPE, style=style)
    assert info["background"] == background
    expected_dtype = np.float32 if background == "zscored" else np.dtype(dtype)
    assert info["dtype"] == np.dtype(expected_dtype).name
    flair = volumes["flair"]
    assert flair.dtype == expected_dtype
    brain = seg > 0  # inside the brain for sure
    far = np.zeros(SHAPE, bool)
    far[:3], far[-3:] = True, True  # outside the brain box
    if background == "zero":
        assert (flair[far] == 0).all() and (flair[brain] != 0).all()
    elif background == "residue":
        assert (flair < 0).sum() > 50  # ringing at the brain's edge
        if dtype == "float32":
            bg = flair[far]
            assert (bg != 0).mean() > 0.6 and np.abs(bg).max() < 1e-6 * np.abs(flair).max()
    else:
        nonzero = flair[flair != 0]
        assert abs(float(nonzero.mean())) < 0.05 and abs(float(nonzero.std()) - 1) < 0.05
        assert (nonzero < 0).mean() > 0.1 and (flair[far] == 0).all()
    case_dir = tmp_path / "QUIRK"
    case_dir.mkdir()
    for name, data in volumes.items():
        save_ras(data, case_dir / f"QUIRK_{name}.nii.gz")
    case = load_case(case_dir)
    assert case.shape == SHAPE and case.volumes["flair"].dtype == expected_dtype
    assert np.array_equal(case.volumes["flair"], flair)


def test_controls_have_no_lesion_and_no_class(tmp_path):
    root = tmp_path / "c"
    plans = write_synthetic_cohort(root, cases=4, seed=6, shape=SHAPE, progress=False, controls=2)
    controls = [p for p in plans if p.control]
    assert len(controls) == 2 and all(p.label is None for p in controls)
    assert [p.case_id for p in plans[:4]] == [p.case_id for p in plan_cohort(4, seed=6)]  # tumour cases unchanged
    labels = (root / "training_data_classification_labels.csv").read_text()
    assert all(p.case_id not in labels for p in controls) and all(p.case_id in labels for p in plans[:4])
    for p in plans:
        seg = np.asanyarray(nib.load(str(root / "Segmentation" / f"{p.case_id}_seg.nii.gz")).dataobj)
        assert (seg.max() == 0) == p.control
    with open(root / "Segmentation" / "appearance.csv", newline="") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    for p in controls:
        r = rows[p.case_id]
        assert r["control"] == "1" and r["class"] == "" and r["flair_z"] == "" and r["lesion_ml"] == "0.0"
    assert all(rows[p.case_id]["control"] == "0" and rows[p.case_id]["class"] == p.label for p in plans[:4])
    co = read_cohort(root)
    assert len(co.entries) == 6 and {e.case_id for e in co.labelled()} == {p.case_id for p in plans[:4]}
    assert "style `broad`" in (root / "SYNTHETIC.md").read_text()


def test_style_validation():
    with pytest.raises(SynthSettingsError, match="flair_z"):
        Style("bad", flair_z=(3.0, 1.0))
    with pytest.raises(SynthSettingsError, match="known styles: broad"):
        get_style("nope")
    with pytest.raises(SynthSettingsError, match="prevalence"):
        Style("bad", a_mismatch=(0.5, 1.5))
    with pytest.raises(SynthSettingsError, match="families"):
        Style("bad", families=(("no_such_family", 1.0),))
    assert {"broad", "train", "heldout", "subtle", "legacy", "brats"} <= set(STYLES)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cases", "0"], "--cases 0: need at least 1 case"),
        (["--shape", "0", "0", "0"], "--shape 0 0 0: need three axes"),
        (["--style", "nope"], "unknown style 'nope'; known styles: broad, train, heldout, brats, subtle, legacy"),
        (["--controls", "-1"], "--controls -1"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    assert main(["synth", str(tmp_path / "c"), "--quiet", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_cli_style_and_controls(tmp_path, capsys):
    out = tmp_path / "c"
    assert (
        main(
            [
                "synth",
                str(out),
                "--cases",
                "3",
                "--controls",
                "1",
                "--style",
                "subtle",
                "--seed",
                "1",
                "--shape",
                *map(str, SHAPE),
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert "1 tumour-free controls; style subtle" in capsys.readouterr().out
    assert "style `subtle`" in (out / "SYNTHETIC.md").read_text()
    assert len(list((out / "Radiology").iterdir())) == 4
