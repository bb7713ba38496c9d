"""`radpath prepare` on a real study against its BraTS-preprocessed version.

    python tests/bench/bench_prepare.py RAW_STUDY REFERENCE_CASE REFERENCE_SEG [--out DIR] [--paths nifti,dicom,zip]

e.g. RAW_STUDY = ../shared/real/raw/TCGA_FG_6692 (four native NIfTI, skull on),
REFERENCE_CASE = ../shared/real/Radiology/TCGA_FG_6692 (what the BraTS preprocessing made of them),
REFERENCE_SEG = ../shared/real/Segmentation/TCGA_FG_6692_seg_automatic.nii.gz. The project never
reads that folder itself: this script is given it.

Paths: `nifti` prepares the raw folder as it is; `dicom` first writes each raw NIfTI as a DICOM MR
series (one file per slice, full geometry, made-up patient, misleading file names), then prepares
the folder; `zip` the same folder zipped. For each it prints, voxel for voxel on the release grid:
- brain-mask Dice with the reference (non-zero voxels of both; target >= 0.90), and the same for the
  atlas brain alone (what an identity "registration" would score: the floor this must beat on
  registration-sensitive measures);
- per sequence, the correlation with the reference inside the reference brain (registration check);
- the max-tumour slice found by `radpath.preprocess` on the prepared case, its rank among the
  reference mask's axial slices by tumour area and its area relative to the largest (target: among
  the largest), next to the same on the reference case itself; the tumour that preprocessing finds
  on the prepared case against the reference mask (Dice, centroid distance in mm);
- time per stage and in total (target <= 300 s on 2 cores; run under flock /tmp/radpath-cpu.lock).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from radpath.prepare import prepare_study  # noqa: E402
from radpath.prepare.atlas import atlas_brain_mask  # noqa: E402
from radpath.prepare.dicom_write import write_series  # noqa: E402
from radpath.preprocess import load_case, max_tumor_slice, tumor_mask  # noqa: E402

# what the scanner called each series (the raw file names carry these descriptions)
DICOM_TAGS = {
    "_fla": {
        "number": 5,
        "description": "MRHR FLAIR AX",
        "tr": 9000,
        "te": 140,
        "ti": 2500,
        "scanning_sequence": "SE\\IR",
    },
    "_t1c": {"number": 13, "description": "MRHR T1 AX POST GAD", "tr": 550, "te": 12, "contrast": "GADOLINIUM"},
    "_t1": {"number": 10, "description": "T1 AX", "tr": 550, "te": 12},
    "_t2": {"number": 2, "description": "MRHR T2 AX", "tr": 4000, "te": 100},
}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def as_dicom(raw: Path, out: Path) -> Path:
    """Each raw NIfTI as an MR series of one study, files named to mislead (IM_<n> in S<k>/)."""
    for k, path in enumerate(sorted(raw.glob("*.nii*"))):
        stem = path.name.split(".nii")[0]
        tags = next(t for suffix, t in DICOM_TAGS.items() if stem.endswith(suffix))
        img = nib.load(path)
        write_series(
            np.asarray(img.dataobj, np.float32),
            img.affine,
            out / "DICOM" / f"S{k}",
            tags,
            study_uid="1.2.826.0.1.3680043.8.498.9",
        )
    return out


def slice_rank(seg: np.ndarray, k: int) -> dict:
    area = seg.sum(axis=(0, 1))
    order = np.argsort(-area)
    return {
        "slice": int(k),
        "rank": int(np.flatnonzero(order == k)[0]) + 1,
        "area_vs_largest": round(float(area[k] / area.max()), 3),
        "largest_slice": int(order[0]),
    }


def measure(case_dir: Path, case_id: str, ref_dir: Path, seg: np.ndarray) -> dict:
    ref_id = ref_dir.name
    ref = {
        q: np.asarray(nib.load(ref_dir / f"{ref_id}_{q}.nii.gz").dataobj, np.float32)
        for q in ("flair", "t1", "t1ce", "t2")
    }
    got = {q: np.asarray(nib.load(case_dir / f"{case_id}_{q}.nii.gz").dataobj, np.float32) for q in ref}
    aff = nib.load(case_dir / f"{case_id}_flair.nii.gz").affine
    ref_aff = nib.load(ref_dir / f"{ref_id}_flair.nii.gz").affine
    ref_brain = np.any([v != 0 for v in ref.values()], axis=0)
    brain = np.any([v != 0 for v in got.values()], axis=0)
    case = load_case(case_dir, case_id=case_id)
    k = max_tumor_slice(case)
    found = tumor_mask(case)  # RAS voxel order, as the reference mask is compared below
    seg_ras = seg[::-1, ::-1, :] if np.allclose(ref_aff[:3, :3], np.diag([-1, -1, 1])) else None
    # load_case reorients to RAS; the release grid is x- and y-flipped against RAS, z is the same
    return {
        "affine_matches_release": bool(np.allclose(aff, ref_aff, atol=1e-3)),
        "brain_dice": round(dice(brain, ref_brain), 4),
        "atlas_brain_dice": round(dice(atlas_brain_mask(), ref_brain), 4),
        "corr_in_reference_brain": {
            q: round(float(np.corrcoef(got[q][ref_brain], ref[q][ref_brain])[0, 1]), 3) for q in ref
        },
        "tumour_slice": slice_rank(seg, int(k)),
        "tumour_dice": round(dice(found, seg_ras), 3) if seg_ras is not None else None,
        "tumour_centroid_offset_mm": (
            round(float(np.linalg.norm(np.argwhere(found).mean(0) - np.argwhere(seg_ras).mean(0))), 1)
            if seg_ras is not None and found.any()
            else None
        ),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("raw", type=Path)
    p.add_argument("reference", type=Path)
    p.add_argument("seg", type=Path)
    p.add_argument("--out", type=Path, help="keep the prepared cases here (default: a temporary folder)")
    p.add_argument("--paths", default="nifti,dicom,zip")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    seg = np.asarray(nib.load(args.seg).dataobj) > 0
    ref_case = load_case(args.reference)
    ref_found = tumor_mask(ref_case)
    results = {
        "reference_case": {
            "tumour_slice": slice_rank(seg, int(max_tumor_slice(ref_case))),
            "tumour_dice": round(dice(ref_found, seg[::-1, ::-1, :]), 3),
        }
    }
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-dicom-"))
    try:
        for path in args.paths.split(","):
            source = args.raw
            if path in ("dicom", "zip"):
                source = as_dicom(args.raw, work / "study") if not (work / "study").exists() else work / "study"
            if path == "zip":
                z = work / "study.zip"
                with zipfile.ZipFile(z, "w") as zf:
                    for f in sorted((work / "study").rglob("*")):
                        if f.is_file():
                            zf.write(f, f.relative_to(work / "study"))
                source = z
            case_id = f"BENCH_{path.upper()}"
            t0 = time.perf_counter()
            prepared = prepare_study(source, out, case_id)
            wall = time.perf_counter() - t0
            r = measure(prepared.case_dir, case_id, args.reference, seg)
            r["wall_s"] = round(wall, 1)
            r["timings_s"] = prepared.report["timings_s"]
            r["sequences"] = {q: s["reason"] for q, s in prepared.report["sequences"].items()}
            results[path] = r
            print(json.dumps({path: r}, indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    print(f"prepared cases in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
