"""What the user handed over: a DICOM folder, a DICOM `.zip`, or a folder of native-space NIfTI.

A zip is unpacked into a private temporary folder first, with the checks a hostile upload needs:
no member may leave the folder (absolute paths, `..`), links are skipped, and the number of members
and the unpacked bytes are capped before anything is written (`MAX_ZIP_MEMBERS`, `MAX_UNPACKED_MB`),
so a zip bomb is refused in one line instead of filling the disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .errors import StudyError

MAX_ZIP_MEMBERS = 50_000
MAX_UNPACKED_MB = int(os.environ.get("RADPATH_MAX_STUDY_MB", "4096"))
"""A brain MR study is typically 50 to 500 MB of DICOM; 4 GiB leaves room and still stops a bomb."""
NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _safe_members(zf: zipfile.ZipFile, where: Path) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise StudyError(f"{where}: {len(members)} entries, more than the {MAX_ZIP_MEMBERS} a study may have")
    total = sum(m.file_size for m in members)
    if total > MAX_UNPACKED_MB * 2**20:
        raise StudyError(
            f"{where}: unpacks to {total / 2**20:.0f} MB, more than {MAX_UNPACKED_MB} MB (RADPATH_MAX_STUDY_MB)"
        )
    keep = []
    for m in members:
        name = PurePosixPath(m.filename.replace("\\", "/"))
        if m.is_dir():
            continue
        if name.is_absolute() or ".." in name.parts:
            raise StudyError(f"{where}: entry {m.filename!r} points outside the archive; refused")
        if stat.S_ISLNK(m.external_attr >> 16):
            continue
        keep.append(m)
    return keep


def _unzip(path: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            budget = MAX_UNPACKED_MB * 2**20
            for m in _safe_members(zf, path):
                target = dest / PurePosixPath(m.filename.replace("\\", "/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        budget -= len(chunk)
                        if budget < 0:  # sizes in the directory can lie; the bytes cannot
                            raise StudyError(f"{path}: unpacks to more than {MAX_UNPACKED_MB} MB; refused")
                        out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise StudyError(f"{path}: not a readable zip archive ({exc})") from None
    except NotImplementedError as exc:  # e.g. an unsupported compression method
        raise StudyError(f"{path}: {exc}") from None


@contextlib.contextmanager
def study_folder(path: str | Path) -> Iterator[Path]:
    """A folder holding the study: `path` itself, or a temporary unpacking of a zip (removed after)."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise StudyError(f"{path}: not found (give a DICOM folder, a .zip of one, or a folder of four NIfTI)")
    if not zipfile.is_zipfile(path):
        raise StudyError(f"{path}: neither a folder nor a .zip archive")
    tmp = Path(tempfile.mkdtemp(prefix="radpath-study-"))
    try:
        _unzip(path, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def list_files(folder: Path) -> list[Path]:
    """Every regular file under `folder` (nested folders included, links not followed), sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            p = Path(root) / f
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return out
