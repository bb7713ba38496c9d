import gzip

import nibabel as nib
import numpy as np
import pytest

from radpath.preprocess import CaseError, load_case
from radpath.preprocess.case import SEQUENCES
from radpath.preprocess.read_case import MAX_AXIS_VOXELS
from tests.conftest import copy_case, write_nifti


def _seq(case_dir, name):
    return case_dir / f"{case_dir.name}_{name}.nii.gz"


def test_good_case_loads_in_canonical_orientation(case_dir):
    case = load_case(case_dir)
    assert case.case_id == case_dir.name
    assert case.shape == (96, 96, 62)
    assert case.source_orientation == "LPS"  # the generator stores BraTS-like LPS
    assert nib.aff2axcodes(case.affine) == ("R", "A", "S")
    stored = np.asanyarray(nib.load(str(_seq(case_dir, "flair"))).dataobj)
    np.testing.assert_array_equal(case.volumes["flair"], stored[::-1, ::-1, :])
    assert set(case.volumes) == set(SEQUENCES)


def test_orientation_does_not_change_what_axial_means(case_dir, tmp_path):
    """The same case stored RAS or with permuted axes gives identical canonical volumes."""
    ref = load_case(case_dir)
    for name in SEQUENCES:
        img = nib.load(str(_seq(case_dir, name)))
        data = np.asanyarray(img.dataobj)
        # store as axes (k, i, j): a different voxel order with the matching affine
        perm = np.transpose(data, (2, 0, 1))
        affine = img.affine[:, [2, 0, 1, 3]]
        (tmp_path / "X").mkdir(exist_ok=True)
        write_nifti(tmp_path / "X" / f"X_{name}.nii.gz", perm, affine)
    moved = load_case(tmp_path / "X")
    for name in SEQUENCES:
        np.testing.assert_array_equal(moved.volumes[name], ref.volumes[name])
    np.testing.assert_allclose(moved.affine, ref.affine)


def test_explicit_paths_and_plain_nii(case_dir, tmp_path):
    paths = {}
    for name in SEQUENCES:
        img = nib.load(str(_seq(case_dir, name)))
        paths[name] = tmp_path / f"P1_{name}.nii"
        nib.save(img, str(paths[name]))
    case = load_case(paths)
    assert case.case_id == "P1"
    np.testing.assert_array_equal(case.volumes["t2"], load_case(case_dir).volumes["t2"])


def test_missing_sequence_names_the_file(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    _seq(broken, "t1ce").unlink()
    with pytest.raises(CaseError, match=r"missing .*_t1ce\.nii\.gz"):
        load_case(broken)


def test_both_nii_and_niigz_is_ambiguous(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    nib.save(nib.load(str(_seq(broken, "t2"))), str(broken / f"{broken.name}_t2.nii"))
    with pytest.raises(CaseError, match="both"):
        load_case(broken)


def test_truncated_gzip(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    f = _seq(broken, "flair")
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.raises(CaseError, match=r"_flair\.nii\.gz.*(truncated|decompress)"):
        load_case(broken)


def test_not_gzip_at_all(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    _seq(broken, "t1").write_bytes(b"this is not a nifti file")
    with pytest.raises(CaseError, match=r"_t1\.nii\.gz"):
        load_case(broken)


@pytest.mark.parametrize("shape, pattern", [((96, 96), "3-D"), ((96, 96, 62, 2), "3-D")])
def test_wrong_dimensionality(case_dir, tmp_path, shape, pattern):
    broken = copy_case(case_dir, tmp_path)
    write_nifti(_seq(broken, "t2"), np.ones(shape, np.int16))
    with pytest.raises(CaseError, match=pattern):
        load_case(broken)


def test_mismatched_shape(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    img = nib.load(str(_seq(broken, "t1")))
    data = np.asanyarray(img.dataobj)[:-2]
    write_nifti(_seq(broken, "t1"), data, img.affine)
    with pytest.raises(CaseError, match=r"_t1\.nii\.gz: shape .* differs from flair"):
        load_case(broken)


def test_mismatched_affine(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    img = nib.load(str(_seq(broken, "t2")))
    affine = img.affine.copy()
    affine[0, 3] += 3.0  # shifted by 3 mm: not co-registered
    write_nifti(_seq(broken, "t2"), np.asanyarray(img.dataobj), affine)
    with pytest.raises(CaseError, match=r"_t2\.nii\.gz: affine differs"):
        load_case(broken)


def test_qform_code_may_differ_when_affines_agree(case_dir):
    codes = {int(nib.load(str(_seq(case_dir, n))).header["qform_code"]) for n in SEQUENCES}
    assert codes == {1, 2}  # the generator reproduces this quirk of real files
    load_case(case_dir)


def test_nan_voxels(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    img = nib.load(str(_seq(broken, "t1ce")))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[10, 10, 10] = np.nan
    write_nifti(_seq(broken, "t1ce"), data, img.affine)
    with pytest.raises(CaseError, match=r"_t1ce\.nii\.gz: 1 voxels are NaN"):
        load_case(broken)


def test_constant_image(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    img = nib.load(str(_seq(broken, "flair")))
    write_nifti(_seq(broken, "flair"), np.full(img.shape, 7, np.int16), img.affine)
    with pytest.raises(CaseError, match="constant"):
        load_case(broken)


def test_absurd_header_rejected_before_reading(case_dir, tmp_path):
    """A header claiming 30000^3 voxels over a tiny file is refused without allocating anything."""
    broken = copy_case(case_dir, tmp_path)
    img = nib.load(str(_seq(broken, "t1")))
    hdr = img.header.copy()
    hdr.set_data_shape((30000, 30000, 30000))
    raw = hdr.binaryblock + b"\x00" * 4 + b"\x00" * 64
    with gzip.open(_seq(broken, "t1"), "wb") as f:
        f.write(raw)
    with pytest.raises(CaseError, match=f"not a plausible MRI volume.*{MAX_AXIS_VOXELS}"):
        load_case(broken)


def test_bad_voxel_size(case_dir, tmp_path):
    broken = copy_case(case_dir, tmp_path)
    img = nib.load(str(_seq(broken, "t1")))
    img.header.set_zooms((100.0, 1.0, 1.0))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, img.header), str(_seq(broken, "t1")))
    with pytest.raises(CaseError, match="voxel size"):
        load_case(broken)


def test_one_file_in_two_slots_is_refused(case_dir):
    paths = {name: _seq(case_dir, name) for name in SEQUENCES}
    paths["t2"] = paths["flair"]
    with pytest.raises(CaseError, match=r"_flair\.nii\.gz: is the same file as the flair slot's"):
        load_case(paths)


def test_identical_volumes_in_two_slots_are_refused(case_dir, tmp_path):
    """A copy (another file, same voxels; here even re-encoded as .nii) is refused and named."""
    broken = copy_case(case_dir, tmp_path)
    img = nib.load(str(_seq(broken, "t1")))
    _seq(broken, "t1ce").unlink()
    nib.save(img, str(broken / f"{broken.name}_t1ce.nii"))
    with pytest.raises(CaseError, match=r"_t1ce\.nii: holds exactly the same voxels as the t1 file"):
        load_case(broken)
    load_case(case_dir)  # four distinct sequences still load


# ---------------------------------------------------------------- limits (issue 11)
def _tiny_case(root, name="T", shape=(24, 24, 16), dtype=np.int16):
    from tests.hardening.corpus import SEQS

    d = root / name
    d.mkdir()
    rng = np.random.default_rng(0)
    for s in SEQS:
        write_nifti(d / f"{name}_{s}.nii.gz", (rng.random(shape) * 100 + 1).astype(dtype))
    return d


def test_limits_are_configurable_per_call_and_by_environment(tmp_path, monkeypatch):
    from radpath.preprocess.limits import ReadLimits

    d = _tiny_case(tmp_path)  # 24x24x16 int16: 18 KiB a volume, 72 KiB a case
    load_case(d)
    with pytest.raises(CaseError, match=r"T_flair\.nii\.gz: declares 24x24x16 int16 = 18.0 KiB .* limit per volume"):
        load_case(d, limits=ReadLimits(max_volume_bytes=10_000))
    with pytest.raises(CaseError, match=r"^T: the four volumes declare 72.0 KiB .*limit per case"):
        load_case(d, limits=ReadLimits(max_case_bytes=50_000))
    monkeypatch.setenv("RADPATH_MAX_CASE_MB", "0")
    with pytest.raises(CaseError, match="RADPATH_MAX_CASE_MB: must be a positive number"):
        load_case(d)
    monkeypatch.setenv("RADPATH_MAX_CASE_MB", "1")
    load_case(d)


def test_default_limits_fit_a_real_sized_float64_case():
    from radpath.preprocess.limits import ReadLimits

    real = 240 * 240 * 155 * 8
    assert ReadLimits().max_volume_bytes >= 3 * real and ReadLimits().max_case_bytes >= 1.5 * 4 * real


def test_header_is_checked_before_nibabel_reads_extensions(tmp_path, monkeypatch):
    """nib.load reads every header extension before the header can be checked; the reader must not
    call it at all."""
    import nibabel

    d = _tiny_case(tmp_path)
    monkeypatch.setattr(nibabel, "load", lambda *a, **k: pytest.fail("nib.load called"))
    assert load_case(d).shape == (24, 24, 16)


def test_fifo_or_directory_is_not_reported_missing(tmp_path):
    import os

    d = _tiny_case(tmp_path)
    (d / "T_t1.nii.gz").unlink()
    os.mkfifo(d / "T_t1.nii.gz")
    with pytest.raises(CaseError, match=r"T_t1\.nii\.gz: is not a regular file \(it is a FIFO"):
        load_case(d)


def test_missing_message_does_not_list_unrelated_files(tmp_path):
    d = _tiny_case(tmp_path)
    (d / "T_t2.nii.gz").unlink()
    (d / "secret.txt").write_text("x")
    with pytest.raises(CaseError) as info:
        load_case(d)
    assert "secret" not in str(info.value) and "T_flair.nii.gz" in str(info.value)
    with pytest.raises(CaseError, match="^/: has no name"):
        load_case("/")


def test_scaled_intensities_are_float32_and_exact(tmp_path):
    import gzip

    from tests.hardening.corpus import header_for, nifti_bytes

    d = _tiny_case(tmp_path)
    raw = np.asanyarray(nib.load(str(d / "T_t1.nii.gz")).dataobj)
    hdr = header_for(raw, nib.load(str(d / "T_flair.nii.gz")).affine)
    (d / "T_t1.nii.gz").write_bytes(gzip.compress(nifti_bytes(raw, hdr, scl_slope=2.0, scl_inter=-5.0)))
    case = load_case(d)
    assert case.volumes["t1"].dtype == np.float32
    np.testing.assert_array_equal(case.volumes["t1"], raw.astype(np.float32) * 2 - 5)
