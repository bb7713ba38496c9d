"""A generated hostile corpus of NIfTI cases: forged headers, bombs, bad values, bad names.

`write_corpus(root)` writes every case under `root` (tiny volumes, a few MB in all, ~1 s) and
returns `Entry` rows: where the case is and what the reader must answer, either `None` (the case
loads) or a regex the one-line error must match. Shared by the Python-API and CLI corpus tests
(and usable by hand: `python -m tests.hardening.corpus OUT` writes it and prints the table).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

SEQS = ("flair", "t1", "t1ce", "t2")
SHAPE = (32, 32, 20)
MIB = 1024 * 1024
_ZEROS_MEMBER = gzip.compress(b"\x00" * MIB, compresslevel=9)
"""One gzip member of 1 MiB of zeros (~1 KB): repeated, it makes a bomb of any size cheaply."""


@dataclass(frozen=True)
class Entry:
    name: str
    source: str | dict  # a case folder, or {sequence: file}
    expect: str | None  # None: loads; else a regex the error line must match
    cli: bool = True  # also run through `radpath inspect`
    min_growth_mb: float = 0.0  # a case the reader must really read: proves the memory meter works


def brain(seed: int, dtype=np.int16) -> np.ndarray:
    """A tiny brain-like volume: a noisy ellipsoid on a zero background with a bright blob."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij")
    inside = x**2 + y**2 + z**2 < 0.8
    v = np.where(inside, 300 + 40 * rng.standard_normal(SHAPE), 0)
    v[((x - 0.3) ** 2 + y**2 + z**2 < 0.06) & inside] += 500
    return v.astype(dtype)


def header_for(data: np.ndarray, affine=None) -> nib.Nifti1Header:
    img = nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]) if affine is None else affine)
    img.set_qform(img.affine, 1)
    img.set_sform(img.affine, 1)
    hdr = img.header.copy()
    hdr["vox_offset"] = 352
    hdr.set_slope_inter(1.0, 0.0)
    return hdr


def nifti_bytes(data: np.ndarray, hdr: nib.Nifti1Header | None = None, **fields) -> bytes:
    """Raw single-file NIfTI-1: header (fields overridden byte-level, no validation) + data."""
    hdr = header_for(data) if hdr is None else hdr
    for k, v in fields.items():
        hdr[k] = v
    dtype = hdr.get_data_dtype() if int(hdr["datatype"]) in (2, 4, 8, 16, 64, 256, 512, 768, 1024, 1280) else data.dtype
    pad = (
        max(0, int(float(hdr["vox_offset"])) - 352)
        if np.isfinite(float(hdr["vox_offset"])) and float(hdr["vox_offset"]) < 1e6
        else 0
    )
    return hdr.binaryblock + b"\x00" * 4 + b"\x00" * pad + np.asarray(data, dtype).tobytes(order="F")


def write(path: Path, raw: bytes, compress: bool | None = None) -> Path:
    compress = path.name.endswith(".gz") if compress is None else compress
    path.write_bytes(gzip.compress(raw, compresslevel=1) if compress else raw)
    return path


def _case(
    root: Path, name: str, files: dict[str, bytes] | None = None, suffix: str = ".nii.gz", case_id: str | None = None
) -> Path:
    """A case folder whose four sequences are valid tiny brains, except those given in `files`."""
    case_id = case_id or name
    d = root / name
    d.mkdir(parents=True)
    files = files or {}
    for i, s in enumerate(SEQS):
        if s in files and files[s] is None:
            continue
        raw = files.get(s) or nifti_bytes(brain(i))
        write(d / f"{case_id}_{s}{suffix}", raw)
    return d


def _bomb_header(shape, dtype, members: int = 4) -> bytes:
    """gzip: a header declaring `shape` x `dtype`, then `members` MiB of zeros (a ~1 KB/MiB bomb)."""
    hdr = header_for(np.zeros((8, 8, 8), dtype))
    hdr.set_data_shape(shape)
    raw = gzip.compress(hdr.binaryblock + b"\x00" * 4)
    return raw + _ZEROS_MEMBER * members


def write_corpus(root: Path) -> list[Entry]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    E: list[Entry] = []
    good = brain(0)

    def case(name, expect, files=None, suffix=".nii.gz", cli=True):
        E.append(Entry(name, str(_case(root, name, files, suffix)), expect, cli))

    def one(name, expect, raw: bytes, seq="flair", cli=True):
        case(name, expect, {seq: raw}, cli=cli)

    def file_as_is(name, expect, seq, content: bytes, suffix=".nii.gz"):
        """A valid case whose `seq` file holds exactly `content` (no compression added)."""
        case(name, expect, {seq: None}, suffix=suffix)
        (Path(E[-1].source) / f"{name}_{seq}{suffix}").write_bytes(content)

    # -- accepted: the reader must not be stricter than the format
    case("valid", None)
    case("valid_plain_nii", None, suffix=".nii")
    one("big_endian", None, header_for(good.astype(">i2")).binaryblock + b"\0" * 4 + good.astype(">i2").tobytes("F"))
    h2 = nib.Nifti2Header()
    h2.set_data_shape(SHAPE), h2.set_data_dtype(np.int16), h2.set_zooms((1, 1, 1))
    h2.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), 1), h2.set_qform(np.diag([-1.0, -1.0, 1.0, 1.0]), 1)
    h2["vox_offset"] = 544
    one("nifti2", None, h2.binaryblock + b"\0" * 4 + good.tobytes("F"))
    one("4d_with_t1", None, nifti_bytes(good, dim=[4, *SHAPE, 1, 1, 1, 1]))
    one("vox_offset_zero", None, nifti_bytes(good, vox_offset=0))
    one("scl_slope_nan_means_unscaled", None, nifti_bytes(good, scl_slope=np.nan))
    one("scaled_ok", None, nifti_bytes(good, scl_slope=0.5, scl_inter=10))
    ext = header_for(good)
    ext["vox_offset"] = 368
    one(
        "extension_claims_1GiB",
        None,
        ext.binaryblock + b"\x01\0\0\0" + struct.pack("<ii", 1 << 30, 0) + b"\0" * 8 + good.tobytes("F"),
    )
    file_as_is("trailing_gzip_bomb_1GiB", None, "flair", gzip.compress(nifti_bytes(good)) + _ZEROS_MEMBER * 1024)
    co = zlib.compressobj(1, zlib.DEFLATED, 31)
    same = co.compress(nifti_bytes(good)) + b"".join(co.compress(b"\x00" * MIB) for _ in range(64)) + co.flush()
    file_as_is("gzip_bomb_inside_member", r"more than 1.0 MiB past the voxel data", "t2", same)
    for name, cid in [
        ("comma", "A,B"),
        ("newline", "A\nB"),
        ("formula", '=HYPERLINK("evil")'),
        ("unicode", "Ünïcode_病例"),
        ("spaces", "  lead and trail  "),
        ("dash", "-rf"),
        ("quote", "a'b\"c"),
    ]:
        (root / f"name_{name}").mkdir()
        E.append(Entry(f"name_{name}", str(_case(root / f"name_{name}", cid)), None))

    # -- limits: declared sizes refused from the header, before any data is read
    file_as_is(
        "bomb_1024x1024x256_float64",
        r"2.0 GiB of voxels, over the 256.0 MiB limit per volume",
        "flair",
        _bomb_header((1024, 1024, 256), np.float64),
    )
    file_as_is(
        "bomb_1024x1024x256_int16",
        r"512.0 MiB of voxels, over the 256.0 MiB limit per volume",
        "t1",
        _bomb_header((1024, 1024, 256), np.int16),
    )
    per_case = _bomb_header((1024, 1024, 100), np.int16, members=1)  # 200 MiB each, 800 MiB per case
    case(
        "bomb_case_total",
        r"^bomb_case_total: the four volumes declare 800.0 MiB .*limit per case",
        {s: None for s in SEQS},
    )
    for s in SEQS:
        (Path(E[-1].source) / f"bomb_case_total_{s}.nii.gz").write_bytes(per_case)
    one("extension_offset_1GiB", r"header extensions.*limit", nifti_bytes(good, vox_offset=352 + (1 << 30)))
    file_as_is(
        "forged_dims_30000", r"not a plausible MRI volume", "t2", _bomb_header((30000, 30000, 30000), np.int16, 1)
    )

    # a genuine-sized read (4 x 120 MiB declared, within the limits; sparse files of zeros): the
    # reader allocates one volume before finding it constant, so the memory meter must see it
    d = _case(root, "sparse_zeros_120MiB", {s: None for s in SEQS})
    big = header_for(np.zeros((8, 8, 8), np.int16))
    big.set_data_shape((512, 512, 240))
    for s in SEQS:
        with open(d / f"sparse_zeros_120MiB_{s}.nii", "wb") as f:
            f.write(big.binaryblock + b"\0" * 4)
            f.truncate(352 + 512 * 512 * 240 * 2)
    E.append(Entry("sparse_zeros_120MiB", str(d), r"_flair\.nii: the image is constant", min_growth_mb=100))

    # -- forged header fields
    for n, dim0 in [("dim0_9", 9), ("dim0_0", 0), ("dim0_neg", -1), ("dim0_8", 8)]:
        one(
            f"{n}",
            rf"dim\[0\]={dim0} is not a valid number of dimensions",
            nifti_bytes(good, dim=[dim0, *SHAPE, 1, 1, 1, 1]),
        )
    one("dim_negative_axis", r"axis of size < 1", nifti_bytes(good, dim=[3, -32, 32, 20, 1, 1, 1, 1]))
    one("dim_zero_axis", r"axis of size < 1", nifti_bytes(good, dim=[3, 0, 32, 20, 1, 1, 1, 1]))
    one("2d", r"expected a 3-D volume", nifti_bytes(good[:, :, 0], dim=[2, 32, 32, 1, 1, 1, 1, 1]))
    one("4d_t2", r"expected a 3-D volume", nifti_bytes(np.stack([good, good], -1), dim=[4, *SHAPE, 2, 1, 1, 1]))
    for n, z in [("pixdim_zero", 0.0), ("pixdim_negative", -1.0), ("pixdim_nan", np.nan), ("pixdim_inf", np.inf)]:
        one(n, r"voxel size .*positive, finite", nifti_bytes(good, pixdim=[1, z, 1, 1, 1, 1, 1, 1]))
    one("pixdim_100mm", r"voxel size .*outside", nifti_bytes(good, pixdim=[1, 100, 1, 1, 1, 1, 1, 1]))
    one("sform_nan", r"sform .*NaN", nifti_bytes(good, srow_x=[np.nan, 0, 0, 0]))
    one("sform_inf", r"sform .*NaN or infinite", nifti_bytes(good, srow_y=[0, np.inf, 0, 0]))
    one("sform_singular", r"not a valid, invertible", nifti_bytes(good, srow_x=[0, 0, 0, 0], srow_y=[0, 0, 0, 0]))
    one("qform_nan", r"qform .*NaN", nifti_bytes(good, sform_code=0, quatern_b=np.nan))
    one("qform_norm_above_1", r"quaternion", nifti_bytes(good, sform_code=0, quatern_b=0.9, quatern_c=0.9))
    one("vox_offset_negative", r"vox_offset -16.0 is not a valid", nifti_bytes(good, vox_offset=-16))
    one("vox_offset_nan", r"vox_offset nan is not a valid", nifti_bytes(good, vox_offset=np.nan))
    one("vox_offset_fraction", r"not a whole number", nifti_bytes(good, vox_offset=352.5))
    case(
        "vox_offset_past_eof_nii",
        r"vox_offset 100000 is past the end of the file",
        {"t1": nifti_bytes(good, vox_offset=100000)[:2000]},
        suffix=".nii",
    )
    one("vox_offset_past_eof_gz", r"ends .*(truncated)", nifti_bytes(good, vox_offset=100000)[:2000], seq="t1")
    for n, code, pat in [
        ("datatype_unknown", 1234, r"datatype 1234 \(an unknown code\)"),
        ("datatype_complex", 32, r"datatype 32 \(complex64\)"),
        ("datatype_rgb", 128, r"datatype 128 \(RGB24\)"),
        ("datatype_zero", 0, r"datatype 0"),
    ]:
        one(n, pat, nifti_bytes(good, datatype=code))
    one("magic_wrong", r"not a NIfTI file: magic", nifti_bytes(good, magic=b"abc"))
    one("magic_pair", r"separate .img", nifti_bytes(good, magic=b"ni1"))
    one("sizeof_hdr_wrong", r"header size field is 1234", nifti_bytes(good, sizeof_hdr=1234))

    # -- values
    one("scl_slope_3e38", r"(NaN or infinite|intensities reach).*scl_slope", nifti_bytes(good, scl_slope=3e38))
    one("scl_slope_1e37", r"intensities reach .*scl_slope", nifti_bytes(good, scl_slope=1e37))
    one("scl_slope_inf", r"scl_slope is inf", nifti_bytes(good, scl_slope=np.inf))
    one("scl_inter_inf", r"scl_inter is -inf", nifti_bytes(good, scl_slope=2.0, scl_inter=-np.inf))
    one("scl_inter_1e38", r"intensities reach", nifti_bytes(good, scl_slope=1.0, scl_inter=1e38))
    big = good.astype(np.float64)
    big[5, 5, 5] = 1e300
    one("float64_1e300", r"intensities reach 1e\+300", nifti_bytes(big))
    for n, val, dt in [
        ("nan_voxels", np.nan, np.float32),
        ("inf_voxels", np.inf, np.float32),
        ("neg_inf_float64", -np.inf, np.float64),
    ]:
        bad = good.astype(dt)
        bad[1, 2, 3] = val
        one(n, r"1 voxels are NaN or infinite", nifti_bytes(bad))
    one("constant", r"constant", nifti_bytes(np.full(SHAPE, 7, np.int16)))
    one("all_zero", r"constant", nifti_bytes(np.zeros(SHAPE, np.int16)))
    one("all_nan", rf"{np.prod(SHAPE)} voxels are NaN", nifti_bytes(np.full(SHAPE, np.nan, np.float32)))

    # -- grids
    other = np.zeros((32, 30, 20), np.int16)
    other[...] = good[:, :30]
    one("mismatched_shape", r"shape \(32, 30, 20\) differs from flair", nifti_bytes(other), seq="t1")
    shifted = header_for(good, np.array([[-1, 0, 0, 3.0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    one("mismatched_affine", r"affine differs", nifti_bytes(good, shifted), seq="t2")

    # -- broken bytes
    full = gzip.compress(nifti_bytes(good))
    file_as_is("truncated_gzip_half", r"(truncated|decompress)", "t1", full[: len(full) // 2])
    case("truncated_nii", r"is the file truncated", {"t2": nifti_bytes(good)[:-100]}, suffix=".nii")
    case(
        "truncated_in_header",
        r"ends inside the NIfTI header \(100 of 348 bytes\)",
        {"t2": nifti_bytes(good)[:100]},
        suffix=".nii",
    )
    rng = np.random.default_rng(7)
    file_as_is("random_bytes_nii_gz_suffix", r"not a NIfTI file", "flair", rng.bytes(4096))
    file_as_is(
        "random_after_gzip_magic", r"(decompress|not a readable NIfTI)", "flair", b"\x1f\x8b\x08\x00" + rng.bytes(4096)
    )
    file_as_is("empty_file", r"only 0 bytes", "t1", b"", suffix=".nii")
    file_as_is("gzip_of_nothing", r"only 0 bytes", "t1", gzip.compress(b""))
    corrupt = bytearray(full)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 64] = rng.bytes(64)
    file_as_is("corrupt_deflate", r"(decompress|truncated|CRC check failed)", "t1ce", bytes(corrupt))
    file_as_is("zlib_not_gzip", r"not a NIfTI file", "t1ce", zlib.compress(nifti_bytes(good)))

    # -- files that are not files, names that are not names
    d = _case(root, "fifo_as_sequence", {"t1": None})
    os.mkfifo(d / "fifo_as_sequence_t1.nii.gz")
    E.append(Entry("fifo_as_sequence", str(d), r"_t1\.nii\.gz: is not a regular file \(it is a FIFO"))
    d = _case(root, "dir_as_sequence", {"t2": None})
    (d / "dir_as_sequence_t2.nii.gz").mkdir()
    E.append(Entry("dir_as_sequence", str(d), r"_t2\.nii\.gz: is not a regular file \(it is a directory\)"))
    d = _case(root, "devzero_as_sequence", {"flair": None})
    (d / "devzero_as_sequence_flair.nii").symlink_to("/dev/zero")
    E.append(Entry("devzero_as_sequence", str(d), r"is not a regular file \(it is a device\)"))
    d = _case(root, "dangling_symlink", {"flair": None})
    (d / "dangling_symlink_flair.nii.gz").symlink_to(d / "nowhere.nii.gz")
    E.append(Entry("dangling_symlink", str(d), r"_flair\.nii\.gz: file not found"))
    case("missing_t1ce", r"missing missing_t1ce_t1ce\.nii\.gz \(NIfTI files there: ", {"t1ce": None})
    d = _case(root, "both_nii_and_gz")
    write(d / "both_nii_and_gz_t2.nii", nifti_bytes(good))
    E.append(Entry("both_nii_and_gz", str(d), r"both .* exist"))
    E.append(
        Entry("name_300_chars", str(root / ("x" * 300)), r"path component of 300 (characters|bytes)\b.*longer than")
    )
    E.append(Entry("root_folder", "/", r"^/: has no name to take the case ID from"))
    E.append(Entry("file_as_case_folder", str(Path(E[0].source) / "valid_flair.nii.gz"), r"is not a folder"))
    E.append(Entry("not_there", str(root / "no_such_case"), r"is not a folder"))
    E.append(
        Entry(
            "explicit_dir_as_file",
            {**{s: str(Path(E[0].source) / f"valid_{s}.nii.gz") for s in SEQS}, "t1": str(root)},
            r"is not a regular file \(it is a directory\)",
            cli=False,
        )
    )
    return E


def entry_json(e: Entry) -> dict:
    return {"name": e.name, "source": e.source, "expect": e.expect, "cli": e.cli, "min_growth_mb": e.min_growth_mb}


if __name__ == "__main__":
    entries = write_corpus(Path(sys.argv[1]))
    print(json.dumps([entry_json(e) for e in entries], indent=1))
