"""Read and check one case: four NIfTI files -> a `Case` in canonical (RAS+) orientation.

Checks, in the order they are cheap: the four files exist and are regular files (`.nii.gz` or
`.nii`); each raw header is validated by `preprocess.nifti_header` and the decoded sizes are checked
against `preprocess.limits.ReadLimits` (per volume and per case), and the four headers agree on grid
and affine, all *before* any voxel or header-extension byte is read, so a 2 MB file declaring
gigabytes cannot exhaust memory; then exactly the declared voxel bytes are read (a gzip bomb is
never decompressed past them); values are finite and within float32-safe range after scaling, and
not constant. Every failure raises `CaseError` naming the file.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from nibabel import orientations as orient

from radpath.contract.errors import CaseError

from .case import SEQUENCES, Case
from .limits import ReadLimits, human_bytes
from .nifti_header import MAX_AXIS_VOXELS, MIN_AXIS_VOXELS, VolumeHeader, header_size, parse_header  # noqa: F401

log = logging.getLogger(__name__)

AFFINE_ATOL = 1e-2
"""Tolerance (mm, and unitless for the rotation part) when comparing the four affines."""
MAX_NAME_CHARS = 255
"""Longest file-name component on Linux file systems; longer ones fail with an OSError deep in open()."""
_CHUNK = 16 * 1024 * 1024

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def check_path_names(path: Path) -> None:
    """Refuse over-long path components up front (one line instead of ENAMETOOLONG's traceback)."""
    for part in Path(path).parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_CHARS:
            raise CaseError(
                f"{part[:40]}...",
                f"a path component of {len(part)} characters is longer than "
                f"the {MAX_NAME_CHARS} the file system allows",
            )


def _describe_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a plain file"


def _stat_regular(path: Path) -> int:
    """Size of `path` if it is a regular file (following links), else CaseError; never opens it
    (opening a FIFO would block forever)."""
    check_path_names(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CaseError(path, "file not found") from None
    except OSError as exc:
        raise CaseError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise CaseError(path, f"is not a regular file (it is {_describe_kind(st.st_mode)})")
    return st.st_size


def find_sequence_files(case_dir: Path, case_id: str | None = None) -> dict[str, Path]:
    """Paths of `<ID>_{flair,t1,t1ce,t2}.nii[.gz]` inside `case_dir` (ID defaults to the folder name)."""
    case_dir = Path(case_dir)
    check_path_names(case_dir)
    if not case_dir.is_dir():
        raise CaseError(case_dir, "is not a folder (expected Radiology/<ID>/ holding <ID>_flair.nii.gz, ...)")
    case_id = case_id or Path(os.path.abspath(case_dir)).name
    if not case_id:
        raise CaseError(case_dir, "has no name to take the case ID from; give a case folder Radiology/<ID>/")
    found: dict[str, Path] = {}
    for name in SEQUENCES:
        candidates = [case_dir / f"{case_id}_{name}{suffix}" for suffix in NIFTI_SUFFIXES]
        for p in candidates:
            check_path_names(p)
        present = [p for p in candidates if os.path.lexists(p)]
        if len(present) > 1:
            raise CaseError(case_dir, f"both {present[0].name} and {present[1].name} exist; keep one")
        if not present:
            raise CaseError(case_dir, f"missing {case_id}_{name}.nii.gz ({_nifti_listing(case_dir)})")
        _stat_regular(present[0])
        found[name] = present[0]
    return found


def _nifti_listing(folder: Path, limit: int = 8) -> str:
    """The NIfTI files a folder holds, for a "missing" message; never the rest of the folder (a user
    who runs `radpath inspect /` should not see the root listing echoed back)."""
    names = []
    try:
        for p in folder.iterdir():
            if p.name.endswith(NIFTI_SUFFIXES):
                names.append(p.name)
                if len(names) > limit:
                    break
    except OSError:
        return "the folder cannot be listed"
    if not names:
        return "the folder holds no .nii/.nii.gz file"
    shown = ", ".join(sorted(names)[:limit]) + (", ..." if len(names) > limit else "")
    return f"NIfTI files there: {shown}"


class Gunzip:
    """A gzip reader whose output is bounded by what the caller asks for.

    `zlib.decompressobj(31)` checks each member's header, CRC32 and length; `max_length` keeps every
    step's output (and so memory) to the requested size, so a bomb costs only what is read.
    Concatenated members (pigz, bgzip) are read as one stream, as gzip does.
    """

    IN_CHUNK = 256 * 1024

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw = raw
        self.d = zlib.decompressobj(31)
        self.tail = b""  # compressed bytes read but not yet given to a decompressor

    def _input(self) -> bytes:
        data = self.d.unconsumed_tail or self.tail or self.raw.read(self.IN_CHUNK)
        self.tail = b""
        return data

    def _next_member(self) -> bool:
        rest = self.d.unused_data
        while True:
            rest = rest.lstrip(b"\x00")  # zero padding between members, as gzip tolerates
            if rest:
                break
            rest = self.raw.read(self.IN_CHUNK)
            if not rest:
                return False
        self.d, self.tail = zlib.decompressobj(31), rest
        return True

    def read(self, n: int) -> bytes:
        """Up to `n` decompressed bytes; b"" at the end of the stream. EOFError if a member is cut off."""
        while True:
            if self.d.eof and not self._next_member():
                return b""
            data = self._input()
            if not data:
                raise EOFError("the compressed stream ends inside a gzip member")
            out = self.d.decompress(data, n)
            if out:
                return out

    def readinto(self, buf: memoryview | bytearray) -> int:
        pos = 0
        while pos < len(buf):
            out = self.read(len(buf) - pos)
            if not out:
                break
            buf[pos : pos + len(out)] = out
            pos += len(out)
        return pos

    def finish_member(self, slack: int) -> bool:
        """Decompress (and discard) the rest of the current member, at most `slack` bytes, so its
        CRC is checked; False if the member holds more than `slack` further bytes."""
        while not self.d.eof:
            data = self._input()
            if not data:
                raise EOFError("the compressed stream ends inside a gzip member")
            slack -= len(self.d.decompress(data, min(slack + 1, self.IN_CHUNK)))
            if slack < 0:
                return False
        return True


TRAILING_SLACK = 1024 * 1024
"""Bytes a gzip member may hold past the voxel data the header declares (then its CRC is checked)."""


def _open_stream(path: Path) -> tuple[Gunzip | io.BufferedReader, io.BufferedReader, int | None]:
    """(binary stream, underlying file, size of an uncompressed file or None). Gzip is recognised by
    its magic bytes, not the suffix; the caller reads exactly the header, the extension bytes and the
    voxel bytes the validated header allows, never to EOF, so decompression is bounded."""
    size = _stat_regular(path)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise CaseError(path, f"cannot be opened ({exc.strerror or exc})") from None
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return Gunzip(raw), raw, None
    raw.seek(0)
    return raw, raw, size


class _ShortRead(CaseError):
    def __init__(self, where: str | Path, problem: str, got: int) -> None:
        super().__init__(where, problem)
        self.got = got


def _read_into(stream: Gunzip | io.BufferedReader, buf: memoryview, path: Path, what: str) -> None:
    """Fill `buf` from `stream` or raise CaseError (truncated / not decompressible)."""
    pos, n = 0, len(buf)
    try:
        while pos < n:
            got = stream.readinto(buf[pos : min(n, pos + _CHUNK)])
            if not got:
                raise _ShortRead(
                    path, f"the file ends after {pos} of the {n} bytes of {what}; is the file truncated?", pos
                )
            pos += got
    except CaseError:
        raise
    except EOFError as exc:
        raise CaseError(path, f"the compressed stream ends inside {what}; is the file truncated? ({exc})") from None
    except (OSError, zlib.error, ValueError) as exc:
        raise CaseError(path, f"the voxel data cannot be decompressed ({type(exc).__name__}: {exc})") from None


def _verify_member_end(stream: Gunzip, path: Path) -> None:
    """Finish the gzip member holding the end of the voxels so its CRC is checked: a corrupt deflate
    stream can decode to wrong voxels without any other error. Bounded by TRAILING_SLACK, so a bomb
    appended to the data is never decompressed."""
    try:
        complete = stream.finish_member(TRAILING_SLACK)
    except EOFError:
        raise CaseError(path, "the compressed stream ends before its checksum; is the file truncated?") from None
    except zlib.error as exc:
        raise CaseError(path, f"the compressed data is corrupt ({exc})") from None
    if not complete:
        raise CaseError(
            path,
            f"the gzip stream holds more than {human_bytes(TRAILING_SLACK)} past the voxel "
            "data the header declares; the header or the file is corrupt",
        )


def _skip(stream: Gunzip | io.BufferedReader, count: int, path: Path, what: str) -> None:
    buf = bytearray(min(count, _CHUNK))
    left = count
    while left:
        step = min(left, len(buf))
        _read_into(stream, memoryview(buf)[:step], path, what)
        left -= step


def read_header(path: Path, limits: ReadLimits = ReadLimits()) -> VolumeHeader:
    """The validated header of one NIfTI file; reads at most 540 (decompressed) bytes."""
    path = Path(path)
    stream, raw, size = _open_stream(path)
    with raw:
        first = bytearray(4)
        try:
            got = stream.readinto(first)
        except EOFError:
            raise CaseError(
                path, "the compressed stream ends inside the NIfTI header; is the file truncated?"
            ) from None
        except (OSError, zlib.error) as exc:
            raise CaseError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
        hsize, _ = header_size(bytes(first[:got]), path)
        block = bytearray(hsize)
        block[:4] = first
        try:
            _read_into(stream, memoryview(block)[4:], path, "the NIfTI header")
        except _ShortRead as short:
            raise CaseError(
                path,
                f"the file ends inside the NIfTI header ({4 + short.got} of {hsize} bytes); is the file truncated?",
            ) from None
        return parse_header(bytes(block), path, limits, size)


def _scaled(raw: np.ndarray, slope: float, inter: float, path: Path, limits: ReadLimits) -> np.ndarray:
    """float32 raw * slope + inter, computed in float64 slab by slab (bounded extra memory) and
    refused when any value would be non-finite or beyond `limits.max_abs_intensity`."""
    out = np.empty(raw.shape, np.float32, order="F")
    step = max(1, _CHUNK // max(1, raw.shape[0] * raw.shape[1] * 8))
    with np.errstate(all="ignore"):
        for k in range(0, raw.shape[2], step):
            v = raw[:, :, k : k + step].astype(np.float64) * slope + inter
            _check_intensities(v, path, f" after scl_slope {slope:g} / scl_inter {inter:g}", limits)
            out[:, :, k : k + step] = v
    return out


def _check_intensities(values: np.ndarray, path: Path, how: str, limits: ReadLimits) -> None:
    if values.dtype.kind != "f":
        return
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        raise CaseError(path, f"{bad} voxels are NaN or infinite{how}")
    peak = float(np.abs(values).max()) if values.size else 0.0
    if peak > limits.max_abs_intensity:
        raise CaseError(
            path,
            f"intensities reach {peak:.3g}{how}, beyond the {limits.max_abs_intensity:.0e} "
            "an MRI can hold; they would overflow float32 in normalisation",
        )


def read_volume(
    path: Path, limits: ReadLimits | None = None, header: VolumeHeader | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One checked volume in stored orientation: (array [i, j, k], affine 4x4).

    The array keeps its stored dtype (native byte order) unless the header scales intensities
    (scl_slope/scl_inter), which gives float32. Reads only the bytes the validated header allows.
    """
    path = Path(path)
    limits = limits or ReadLimits.from_env()
    header = header or read_header(path, limits)
    stream, raw, _ = _open_stream(path)
    with raw:
        _skip(stream, header.data_offset, path, "the header and its extensions")
        buf = np.empty(header.data_bytes, np.uint8)
        _read_into(stream, buf.data, path, "voxel data")
        if isinstance(stream, Gunzip):  # i.e. stream is not raw
            _verify_member_end(stream, path)
    data = buf.view(header.dtype).reshape(header.shape, order="F")
    if not header.dtype.isnative:
        data = data.byteswap(inplace=True).view(header.dtype.newbyteorder("="))
    if header.slope is not None:
        data = _scaled(data, header.slope, header.inter, path, limits)
    else:
        _check_intensities(data, path, "", limits)
    lo, hi = data.min(), data.max()
    if lo == hi:
        raise CaseError(path, f"the image is constant (every voxel is {lo}); expected a skull-stripped MRI")
    return data, header.affine


def _to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Reorient (flips and axis swaps only, no resampling) to RAS+; returns the source axis codes too."""
    source = orient.io_orientation(affine)
    codes = "".join(orient.aff2axcodes(affine))
    transform = orient.ornt_transform(source, orient.axcodes2ornt("RAS"))
    if np.array_equal(transform, orient.axcodes2ornt("RAS")):
        return data, affine, codes
    out = orient.apply_orientation(data, transform)
    new_affine = affine @ orient.inv_ornt_aff(transform, data.shape)
    return out, new_affine, codes


def load_case(
    source: str | Path | Mapping[str, str | Path],
    case_id: str | None = None,
    age_days: float | None = None,
    label: str | None = None,
    limits: ReadLimits | None = None,
) -> Case:
    """Load and check one case.

    `source` is either a case folder (`Radiology/<ID>/`, ID = folder name unless `case_id` is given)
    or a mapping with the four keys flair, t1, t1ce, t2 to explicit file paths.
    Returns a `Case` whose volumes are [x, y, z] arrays in RAS+ orientation (see `preprocess.case`).
    Raises `CaseError` naming the offending file. `limits` (default: `ReadLimits.from_env()`) caps
    the decoded bytes per volume and per case; all four headers are checked against them, and
    against each other, before any voxel is read.
    """
    limits = limits or ReadLimits.from_env()
    if isinstance(source, Mapping):
        unknown = set(source) - set(SEQUENCES)
        missing = [s for s in SEQUENCES if s not in source]
        if unknown or missing:
            raise CaseError(
                "input",
                f"need exactly the sequences {', '.join(SEQUENCES)}; "
                f"missing {missing or 'none'}, unknown {sorted(unknown) or 'none'}",
            )
        paths = {name: Path(source[name]) for name in SEQUENCES}
        case_id = case_id or _common_id(paths)
    else:
        case_dir = Path(source)
        check_path_names(case_dir)
        case_id = case_id or Path(os.path.abspath(case_dir)).name
        paths = find_sequence_files(case_dir, case_id)

    check_distinct_files(paths)
    headers = {name: read_header(paths[name], limits) for name in SEQUENCES}
    total = sum(h.data_bytes for h in headers.values())
    if total > limits.max_case_bytes:
        sizes = ", ".join(f"{n} {human_bytes(h.data_bytes)}" for n, h in headers.items())
        raise CaseError(
            case_id,
            f"the four volumes declare {human_bytes(total)} of voxels ({sizes}), over the "
            f"{human_bytes(limits.max_case_bytes)} limit per case (raise RADPATH_MAX_CASE_MB "
            "if the files are genuine)",
        )
    ref_name = SEQUENCES[0]
    ref = headers[ref_name]
    for name in SEQUENCES[1:]:
        h = headers[name]
        if h.shape != ref.shape:
            raise CaseError(
                paths[name],
                f"shape {h.shape} differs from {ref_name}'s {ref.shape}; "
                "the four sequences must be co-registered on one grid",
            )
        if not np.allclose(h.affine, ref.affine, atol=AFFINE_ATOL):
            diff = float(np.abs(h.affine - ref.affine).max())
            raise CaseError(
                paths[name],
                f"affine differs from {ref_name}'s by up to {diff:.3g} "
                f"(tolerance {AFFINE_ATOL}); the sequences are not co-registered",
            )

    volumes: dict[str, np.ndarray] = {}
    orientation = "RAS"
    for name in SEQUENCES:
        data, affine = read_volume(paths[name], limits, headers[name])
        volumes[name], canonical_affine, orientation = _to_canonical(data, affine)
    check_distinct_volumes(volumes, paths)
    return Case(
        case_id=case_id,
        volumes=volumes,
        affine=canonical_affine,
        paths=paths,
        age_days=age_days,
        label=label,
        source_orientation=orientation,
    )


def check_distinct_files(paths: Mapping[str, Path]) -> None:
    """Refuse one file given for two sequences: the model would read e.g. FLAIR as T2 and still answer."""
    seen: dict[tuple[int, int], str] = {}
    for name in SEQUENCES:
        try:
            st = paths[name].stat()
        except OSError:
            continue  # read_header names a missing or unreadable file
        first = seen.setdefault((st.st_dev, st.st_ino), name)
        if first != name:
            raise CaseError(
                paths[name],
                f"is the same file as the {first} slot's; each of {', '.join(SEQUENCES)} needs its own file",
            )


def check_distinct_volumes(volumes: Mapping[str, np.ndarray], paths: Mapping[str, Path]) -> None:
    """Refuse two sequences holding identical voxels (one scan copied into two slots): no four real
    sequences are ever equal voxel for voxel. A strided sample first, so distinct volumes cost little
    (a view: the canonical volumes are flipped views, and `reshape(-1)` of one copies all of it, which
    cost 0.26 s per BraTS-size case, more than reading the files)."""
    names = list(volumes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            va, vb = volumes[a], volumes[b]
            if va.shape != vb.shape or not np.array_equal(va[::7, ::7, ::7], vb[::7, ::7, ::7]):
                continue
            if np.array_equal(va, vb):
                raise CaseError(
                    paths.get(b, b),
                    f"holds exactly the same voxels as the {a} file (one scan in two slots?); "
                    f"each of {', '.join(SEQUENCES)} needs its own sequence",
                )


def _common_id(paths: Mapping[str, Path]) -> str:
    """Case ID from explicit files: the FLAIR file name without `_flair.nii[.gz]`."""
    stem = paths["flair"].name
    for suffix in NIFTI_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem[: -len("_flair")] if stem.endswith("_flair") else stem
