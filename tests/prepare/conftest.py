"""DICOM fixtures written here, from small synthetic volumes: real MR Image Storage objects, one per
slice, with the full geometry and the tags a scanner writes (`radpath.prepare.dicom_write`), under
misleading file names and nested folders, beside a localiser and a diffusion series. No test reads a
shared or downloaded file; pydicom's bundled test files are used where a case needs a real codec."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")
pytest.importorskip("SimpleITK")

from radpath.prepare import atlas as atlas_mod
from radpath.prepare import pipeline
from radpath.prepare.dicom_write import FAKE_PATIENT, write_series
from radpath.prepare.volume import Volume

PHI = ("Test^Phantom", "PHANTOM-0001", "19700101", "ACC-123456", "Phantom")
"""What the fake patient's DICOM says and no output may repeat: name, ID, birth date, accession."""

SERIES = {
    # sequence -> tags (the descriptions are what a scanner console shows; TR/TE/TI in ms)
    "flair": {
        "number": 5,
        "description": "MRHR FLAIR AX",
        "tr": 9000,
        "te": 140,
        "ti": 2500,
        "scanning_sequence": "SE\\IR",
    },
    "t1": {"number": 10, "description": "T1 AX SE", "tr": 550, "te": 12},
    "t1ce": {"number": 13, "description": "MRHR T1 AX POST GAD", "tr": 550, "te": 12, "contrast": "MAGNEVIST"},
    "t2": {"number": 2, "description": "MRHR T2 AX", "tr": 4000, "te": 100},
}


def oblique_affine(spacing=(2.0, 2.0, 4.0), angles=(0.1, -0.05, 0.08), origin=(60.0, -70.0, -40.0)) -> np.ndarray:
    """voxel -> RAS affine of a tilted acquisition (LAS-like, as scanners often store axial series)."""
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rz @ ry @ rx @ np.diag([-1.0, 1.0, 1.0]) @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def head_volume(shape=(32, 36, 10), seed: int = 0, contrast: str = "t1") -> np.ndarray:
    """A small head-like volume: skull ring, brain, a bright blob; intensities differ by contrast."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(i**2 + (j * 0.9) ** 2 + (k * 0.8) ** 2)
    brain, skull = r < 0.7, (r >= 0.75) & (r < 0.9)
    blob = (i - 0.25) ** 2 + (j + 0.1) ** 2 + k**2 < 0.05
    level = {"t1": (600, 900, 500), "t1ce": (600, 900, 1200), "t2": (900, 300, 1500), "flair": (500, 200, 1100)}[
        contrast
    ]
    v = np.where(brain, level[0], 0.0) + np.where(skull, level[1], 0.0)
    v = np.where(blob, level[2], v)
    return v + rng.normal(0, 10, shape).clip(0, None)


def write_study(
    root: Path, patient: dict | None = None, skip: tuple[str, ...] = (), extra: bool = True, **overrides
) -> Path:
    """A study folder: the four series (misleadingly named files in nested folders), a localiser and
    (with `extra`) a diffusion series and a README; `overrides` replace a sequence's tags (`flair={...}`)."""
    affine = oblique_affine()
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    for n, (seq, tags) in enumerate(SERIES.items()):
        if seq in skip:
            continue
        tags = {**tags, **overrides.get(seq, {})}
        # file names lie on purpose: the T2 files are called flair_*.dcm and so on
        liar = list(SERIES)[(n + 1) % 4]
        write_series(
            head_volume(contrast=seq, seed=n),
            affine,
            root / "DICOM" / f"S{n:04d}",
            tags,
            patient,
            study_uid,
            names=f"{liar}_{{:03d}}.dcm",
        )
    if extra:
        loc = head_volume(shape=(32, 36, 1))
        write_series(
            loc,
            affine,
            root / "DICOM" / "LOC",
            {
                "number": 1,
                "description": "3-plane localizer",
                "tr": 8,
                "te": 3,
                "image_type": ["ORIGINAL", "PRIMARY", "LOCALIZER"],
            },
            patient,
            study_uid,
        )
        dwi = head_volume(contrast="t2", seed=9)
        write_series(
            dwi,
            affine,
            root / "DICOM" / "S9999",
            {"number": 7, "description": "AX DWI b1000", "tr": 5000, "te": 90},
            patient,
            study_uid,
            names="t1_{:03d}.dcm",
        )
        (root / "README.txt").write_text("viewer CD\n")
    return root


@pytest.fixture
def study(tmp_path) -> Path:
    return write_study(tmp_path / "study")


@pytest.fixture
def patient() -> dict:
    return dict(FAKE_PATIENT)


STEP = 4


def _rotation(deg: float, shift: tuple[float, float, float]) -> np.ndarray:
    a = np.deg2rad(deg)
    m = np.eye(4)
    m[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    m[:3, 3] = shift
    return m


@pytest.fixture
def small_atlas(monkeypatch):
    """The real atlas, every 4th voxel: a 60 x 60 x 39 grid at 4 mm in the same place."""
    full = atlas_mod.atlas_t1()
    aff = full.affine.copy()
    aff[:3, :3] *= STEP
    vol = Volume("SRI24 atlas T1 (4 mm test copy)", full.data[::STEP, ::STEP, ::STEP].copy(), aff)
    mask = atlas_mod.atlas_brain_mask()[::STEP, ::STEP, ::STEP].copy()
    monkeypatch.setattr(pipeline, "atlas_t1", lambda: vol)
    monkeypatch.setattr(pipeline, "atlas_brain_mask", lambda: mask)
    return vol, mask


def zip_folder(folder: Path, path: Path, top: str = "") -> Path:
    """Write every file under `folder` into the zip `path` (under the folder `top` inside it, as an export
    from a PACS or a viewer nests it; "" for none); returns `path`."""
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, Path(top) / f.relative_to(folder))
    return path


def atlas_study(root: Path, vol: Volume, mask: np.ndarray, patient: dict | None = None) -> Path:
    """Four DICOM series of the atlas head, moved (5 degrees, 6 mm) and each with its own contrast."""
    moved = _rotation(5.0, (6.0, -4.0, 3.0)) @ vol.affine
    t1 = vol.data
    head = t1 > 5
    contrast = {  # inverted contrasts inside the head: mutual information has to do the matching
        "flair": np.where(head, (300 - t1) * 3, 0),
        "t1": t1 * 4,
        "t1ce": t1 * 4 + 50,
        "t2": np.where(head, (280 - t1) * 4, 0),
    }
    for n, (q, tags) in enumerate(SERIES.items()):
        write_series(
            np.clip(contrast[q], 0, None),
            moved,
            root / f"d{n}",
            tags,
            patient,
            "1.2.826.0.1.3680043.8.498.5",
            names="img{:03d}",
        )
    return root


def all_output_bytes(case_dir: Path) -> bytes:
    out = b""
    for f in case_dir.iterdir():
        data = f.read_bytes()
        out += data
        if f.name.endswith(".gz"):
            import gzip

            out += gzip.decompress(data)
    return out


# the web app's and the browser's fixtures, for test_web_upload.py and test_web_browser.py
from tests.serving.conftest import model_base  # noqa: E402, F401
from tests.web.conftest import (  # noqa: E402, F401
    client,
    demo_dir,
    model_server,
    served,
    settings,
    users,
    web_model_base,
)
from tests.web.test_browser import browser, page, site  # noqa: E402, F401
