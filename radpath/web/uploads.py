"""Receive the four sequences: stream the multipart body to disk under a size cap, then check.

Memory stays bounded whatever is sent: the body is parsed chunk by chunk (python-multipart's
streaming parser) straight into files named by the server (`<sequence>.nii[.gz]`, the suffix from
the content's magic bytes) in a private staging folder outside the web root. The user's file names
are kept only to be displayed (escaped by the templates). Then the same `preprocess.load_case`
checks as the CLI run; any failure removes the staging folder, so nothing is queued or kept.
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
from python_multipart.multipart import MultipartParser, parse_options_header

from radpath.contract.errors import CaseError, RadPathError
from radpath.preprocess import SEQUENCES, load_case

from . import study_upload
from .safe_text import visible_text
from .settings import Settings, private_dir

log = logging.getLogger(__name__)

MAX_FIELD_BYTES = 1024
MAX_PARTS = 12
MAX_DECLARED_BYTES_PER_FILE = 256 * 1024 * 1024
"""Site limit on one volume's decoded size, from its header (full-size BraTS int16: 18 MB)."""
TEXT_FIELDS = ("csrf_token", "age_days", study_upload.PREPARE_FIELD)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UploadError(RadPathError):
    """A rejected upload: `status` is the HTTP code (always 4xx)."""

    def __init__(self, message: str, status: int = 400):
        self.status = status
        super().__init__(message)


@dataclass
class Staged:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def display_name(raw: str) -> str:
    """The user's file name made safe to keep and show: no path, no control or invisible format
    characters (bidi overrides would reorder the page's text; see `safe_text`), <= 120 chars."""
    name = visible_text(raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return (name[:100] + "…" + name[-19:]) if len(name) > 120 else name


class _Receiver:
    """Callbacks of the streaming parser: one part at a time to its file, everything counted."""

    def __init__(self, staged: Staged):
        self.staged = staged
        self.headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self.parts = 0
        self.kind: str | None = None  # "file", "text" or "skip"
        self.name = ""
        self.buf = bytearray()
        self.fh = None
        self.first = b""

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError(f"too many form parts (more than {MAX_PARTS})")
        self.headers, self.kind, self.buf, self.first = {}, None, bytearray(), b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if len(self._field) + len(self._value) > 4096:
            raise UploadError("a form part header is too long")
        self.headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if self.name == study_upload.STUDY_FIELD and filename is not None:
            self._begin_file(filename, study=True)
        elif self.name in SEQUENCES and filename is not None:
            self._begin_file(filename, study=False)
        elif self.name in TEXT_FIELDS and filename is None:
            self.kind = "text"
        else:
            self.kind = "skip"

    def _begin_file(self, filename: bytes, study: bool) -> None:
        if self.name in self.staged.files:
            raise UploadError(f"{self.name}: sent twice; send each sequence once")
        raw = filename.decode("utf-8", "replace")
        shown = display_name(raw)
        if _CONTROL.search(raw) or "/" in raw or "\\" in raw or len(filename) > 255:
            raise UploadError(
                f"{self.name}: file name not accepted ({shown[:60]!r}…): a browser sends a plain "
                "name of at most 255 bytes, without folders or control characters"
            )
        if not shown:
            self.kind = "skip"  # empty file input: reported as missing below
            return
        if study and not study_upload.is_study_field(self.name, shown):
            raise UploadError(f"{self.name}: expected one DICOM study as a .zip, got {shown!r}", 415)
        if not study and not shown.lower().endswith((".nii", ".nii.gz")):
            raise UploadError(f"{self.name}: expected a NIfTI file (.nii or .nii.gz), got {shown!r}", 415)
        self.staged.names[self.name] = shown
        self.kind = "file"
        path = self.staged.folder / f"{self.name}.part"
        self.staged.files[self.name] = path
        self.fh = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.kind == "file":
            if len(self.first) < 2:
                self.first += chunk[: 2 - len(self.first)]
            self.fh.write(chunk)
        elif self.kind == "text":
            self.buf += chunk
            if len(self.buf) > MAX_FIELD_BYTES:
                raise UploadError(f"form field {self.name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self.kind == "file":
            self.fh.close()
            self.fh = None
            part = self.staged.files[self.name]
            if part.stat().st_size == 0:
                raise UploadError(f"{self.name}: the file {self.staged.names[self.name]!r} is empty")
            if self.name == study_upload.STUDY_FIELD:
                final = part.with_name(self.name + ".zip")
            else:
                final = part.with_name(self.name + (".nii.gz" if self.first == b"\x1f\x8b" else ".nii"))
            os.replace(part, final)
            self.staged.files[self.name] = final
        elif self.kind == "text":
            self.staged.fields[self.name] = self.buf.decode("utf-8", "replace").strip()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


async def receive(request, settings: Settings) -> Staged:
    """Stream a multipart/form-data body into a new staging folder; UploadError (4xx) on any problem."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError("expected a multipart/form-data upload (the form's four file fields)", 415)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > settings.max_upload_bytes):
        raise UploadError(
            f"upload too large: {_mb(int(declared)) if declared.isdigit() else '?'} MB, the limit is "
            f"{_mb(settings.max_upload_bytes)} MB for the four files together",
            413,
        )
    private_dir(settings.staging_dir())
    staged = Staged(settings.staging_dir() / secrets.token_hex(16))
    staged.folder.mkdir(mode=0o700)
    receiver = _Receiver(staged)
    parser = MultipartParser(
        params[b"boundary"],
        {
            k: getattr(receiver, k)
            for k in (
                "on_part_begin",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
                "on_part_data",
                "on_part_end",
            )
        },
    )
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > settings.max_upload_bytes:
                raise UploadError(
                    f"upload too large: more than {_mb(settings.max_upload_bytes)} MB for the four files together", 413
                )
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        receiver.close()
        staged.discard()
        raise
    except Exception as exc:  # the parser's own errors: a malformed body
        receiver.close()
        staged.discard()
        raise UploadError(f"the upload is not a well-formed multipart form ({type(exc).__name__})") from None
    receiver.close()
    return staged


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f}"


def parse_age(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        age = float(raw)
    except ValueError:
        raise UploadError(f"age_days: expected a number of days, got {raw[:40]!r}") from None
    if not math.isfinite(age) or not 0 < age < 130 * 365.25:
        raise UploadError(f"age_days: expected 1 to {int(130 * 365.25)} days, got {raw[:40]!r}")
    return age


def check(staged: Staged) -> None:
    """The preprocess checks of the CLI (load_case), with messages that name the form field; for a
    clinical upload (a DICOM zip, or native NIfTI marked "prepare"), `study_upload.check_upload`."""
    if study_upload.wants_prepare(staged.files, staged.fields):
        try:
            study_upload.check_upload(staged.files, staged.fields)
        except RadPathError as exc:
            raise UploadError(str(exc), 422) from None
        return
    missing = [s for s in SEQUENCES if s not in staged.files]
    if missing:
        raise UploadError(f"missing {', '.join(missing)}: upload all four sequences ({', '.join(SEQUENCES)})")
    where = {str(p): f"{seq} ({staged.names[seq]!r})" for seq, p in staged.files.items()}
    for path in staged.files.values():  # a site limit before any voxel is decoded
        try:
            header = nib.load(str(path)).header
            nbytes = math.prod(int(s) for s in header.get_data_shape()) * header.get_data_dtype().itemsize
        except Exception:
            continue  # load_case below reports unreadable files with its own message
        if nbytes > MAX_DECLARED_BYTES_PER_FILE:
            raise UploadError(
                f"{where[str(path)]}: the header declares {nbytes / 1e6:.0f} MB of voxels; this site "
                f"accepts at most {MAX_DECLARED_BYTES_PER_FILE / 1e6:.0f} MB per sequence",
                413,
            )
    try:
        load_case(staged.files, case_id="upload")
    except CaseError as exc:
        raise UploadError(f"{where.get(exc.where, 'the case')}: {exc.problem}", 422) from None
    except RadPathError as exc:
        raise UploadError(str(exc), 422) from None


def commit(staged: Staged, settings: Settings, case_id: str) -> Path:
    """Move the checked files to cases/<id>/input (same file system: a rename)."""
    folder = private_dir(settings.cases_dir()) / case_id
    folder.mkdir(mode=0o700)
    os.rename(staged.folder, folder / "input")
    study_upload.mark(folder, staged.fields, staged.files)
    return folder


def sweep_staging(settings: Settings, older_than_s: float = 3600) -> int:
    """Remove staging folders left by uploads interrupted by a crash (never queued); returns the count."""
    import time

    folder, removed = settings.staging_dir(), 0
    if folder.is_dir():
        for d in folder.iterdir():
            if time.time() - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
    if removed:
        log.warning("removed %d interrupted uploads from %s", removed, folder)
    return removed
