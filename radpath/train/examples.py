"""Training examples from a cohort, built with the `preprocess` library only, cached on disk.

One example per case: the max-tumour slice and its neighbours, [n_offsets, *IMAGE_SHAPE] in
`contract.model_io.STORAGE_DTYPE` (float16: the model input of `preprocess.model_inputs`, no second
copy of any preprocessing; exact, because the model input contract rounds every value to float16
precision, which the client does too), plus class and age. The cache file is keyed by
PREPROCESSING_VERSION, the offsets and each case's file sizes and modification times, so a change to
the preprocessing or to a file rebuilds exactly what changed. Bad cases are listed (ID and reason)
and skipped, never silently dropped. The case ID is kept for
bookkeeping only; it never reaches the model.

Each example also carries the case's tumour statistics (`preprocess.tumor_stats`: the whole detected
tumour in 3-D, float32 [len(TUMOR_STATS)]), cached beside the image and keyed by TUMOR_STATS_VERSION;
the `tumour_stats_and_age` baseline, the `stats_fusion` reader and models trained with `tumor_stats`
read them.

With `with_seg`, each example also carries the ground-truth tumour labels of a synthetic cohort
(`Segmentation/<ID>_seg.nii.gz`, BraTS labels 1 necrosis, 2 oedema, 4 enhancing) at the same slices,
cropped and zoomed exactly as the image in each of its views (`preprocess.model_input.to_model_plane`,
nearest neighbour), as uint8 [n_offsets, H, W, len(VIEWS)] with SEG_CLASSES indices: the target of
the auxiliary segmentation head. Training only; a cohort without masks trains without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from radpath.contract.errors import CaseError
from radpath.contract.model_io import CLASSES, IMAGE_SHAPE, STORAGE_DTYPE, TUMOR_STATS, VIEWS
from radpath.preprocess import (
    PREPROCESSING_VERSION,
    TUMOR_STATS_VERSION,
    find_tumor,
    load_case,
    model_inputs,
    tumor_stats,
)
from radpath.preprocess.case import Case
from radpath.preprocess.cohort import CohortEntry
from radpath.preprocess.model_input import to_model_plane

from .config import SLICE_OFFSETS as DEFAULT_OFFSETS  # one owner: the training settings

log = logging.getLogger(__name__)

BRATS_LABELS = (0, 1, 2, 4)
"""Ground-truth label values (background, necrosis/non-enhancing core, oedema, enhancing) in the order
of the segmentation head's classes."""
SEG_CLASSES = len(BRATS_LABELS)


@dataclass
class Examples:
    """Arrays aligned on axis 0 (one row per usable case)."""

    case_ids: list[str]
    images: np.ndarray  # STORAGE_DTYPE [n, n_offsets, *IMAGE_SHAPE]
    labels: np.ndarray  # int32 [n], index into CLASSES (-1 if unknown)
    ages_days: np.ndarray  # float32 [n], NaN if unknown
    offsets: tuple[int, ...]
    failed: list[tuple[str, str]]
    seg: np.ndarray | None = None  # uint8 [n, n_offsets, H, W, len(VIEWS)] SEG_CLASSES indices, or None
    tumor_stats: np.ndarray | None = None  # float32 [n, len(TUMOR_STATS)], or None (not built)

    def subset(self, idx: Sequence[int]) -> Examples:
        idx = np.asarray(idx, dtype=np.int64)
        return Examples(
            [self.case_ids[i] for i in idx],
            self.images[idx],
            self.labels[idx],
            self.ages_days[idx],
            self.offsets,
            [],
            None if self.seg is None else self.seg[idx],
            None if self.tumor_stats is None else self.tumor_stats[idx],
        )

    @property
    def centre(self) -> int:
        return self.offsets.index(0)


def _fingerprint(entry: CohortEntry) -> str:
    h = hashlib.sha256(f"{PREPROCESSING_VERSION}|{entry.case_id}".encode())
    for f in sorted(entry.case_dir.iterdir()):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _loaded(entry: CohortEntry, memo: dict | None) -> Case:
    """The case, read once per `memo` (the image and the mask of one example share one read)."""
    if memo is None:
        return load_case(entry.case_dir, entry.case_id, entry.age_days, entry.label)
    if "case" not in memo:
        memo["case"] = load_case(entry.case_dir, entry.case_id, entry.age_days, entry.label)
    return memo["case"]


def _save(path: Path, array: np.ndarray) -> None:
    """Write a cache file atomically: an interrupted run never leaves a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def case_example(
    entry: CohortEntry, offsets: Sequence[int], cache_dir: Path | None, memo: dict | None = None
) -> np.ndarray:
    """STORAGE_DTYPE [len(offsets), *IMAGE_SHAPE] for one case, from the cache when still valid."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{_fingerprint(entry)}|{tuple(offsets)}".encode()).hexdigest()[:24]
        path = cache_dir / f"v{PREPROCESSING_VERSION}" / f"{entry.case_id}-{key}.npy"
        if path.is_file():
            return np.load(path)
    case = _loaded(entry, memo)
    if not find_tumor(case).found:
        tumor = find_tumor(case)
        where = "the candidate's slice" if tumor.possible else "the brain's largest slice"
        log.warning("%s: no confident tumour; the example uses %s", entry.case_id, where)
    x = model_inputs(case, offsets).astype(STORAGE_DTYPE)
    if path is not None:
        _save(path, x)
    return x


def case_tumor_stats(entry: CohortEntry, cache_dir: Path | None, memo: dict | None = None) -> np.ndarray:
    """float32 [len(TUMOR_STATS)] for one case (`preprocess.tumor_stats`), from the cache when still valid."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{_fingerprint(entry)}|stats{TUMOR_STATS_VERSION}".encode()).hexdigest()[:24]
        path = cache_dir / f"v{PREPROCESSING_VERSION}" / f"{entry.case_id}-{key}-stats.npy"
        if path.is_file():
            cached = np.load(path)
            if cached.shape == (len(TUMOR_STATS),):
                return cached
    out = tumor_stats(_loaded(entry, memo))
    if path is not None:
        _save(path, out)
    return out


def seg_path(entry: CohortEntry) -> Path:
    """Where a synthetic cohort keeps a case's ground-truth mask: ROOT/Segmentation/<ID>_seg.nii.gz."""
    return entry.case_dir.parent.parent / "Segmentation" / f"{entry.case_id}_seg.nii.gz"


def case_seg(
    entry: CohortEntry, offsets: Sequence[int], cache_dir: Path | None, memo: dict | None = None
) -> np.ndarray | None:
    """uint8 [len(offsets), *IMAGE_SHAPE[:2], len(VIEWS)] ground-truth labels at the example's slices,
    in each view (None: no mask)."""
    import nibabel as nib
    from nibabel import orientations as orient

    source = seg_path(entry)
    if not source.is_file():
        return None
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{_fingerprint(entry)}|{tuple(offsets)}|{source.stat().st_mtime_ns}".encode())
        path = cache_dir / f"v{PREPROCESSING_VERSION}" / f"{entry.case_id}-{key.hexdigest()[:24]}-seg.npy"
        if path.is_file():
            return np.load(path)
    case = _loaded(entry, memo)
    img = nib.load(str(source))
    ornt = orient.ornt_transform(orient.io_orientation(img.affine), orient.axcodes2ornt("RAS"))
    labels = orient.apply_orientation(np.asarray(img.dataobj), ornt)
    if labels.shape != case.shape:
        log.warning(
            "%s: mask %s has shape %s, the case %s; no segmentation target",
            entry.case_id,
            source,
            labels.shape,
            case.shape,
        )
        return None
    index = np.zeros(256, np.uint8)
    index[list(BRATS_LABELS)] = np.arange(SEG_CLASSES)
    k0, nz = find_tumor(case).index, case.shape[2]
    planes = [labels[:, :, min(max(k0 + o, 0), nz - 1)].astype(np.int64) for o in offsets]
    out = np.stack(
        [
            np.stack([to_model_plane(case, index[np.clip(p, 0, 255)], order=0, view=v) for v in VIEWS], axis=-1)
            for p in planes
        ]
    ).astype(np.uint8)
    if path is not None:
        _save(path, out)
    return out


def build_examples(
    entries: Sequence[CohortEntry],
    cache_dir: str | Path | None,
    offsets: Sequence[int] = DEFAULT_OFFSETS,
    progress: bool = True,
    with_seg: bool = False,
) -> Examples:
    """Examples for `entries`; cases that fail their checks are reported in `failed` and skipped.
    `with_seg`: also the ground-truth masks (`seg` stays None unless every case has one)."""
    cache = Path(cache_dir) if cache_dir is not None else None
    ids, images, stats, labels, ages, failed = [], [], [], [], [], []
    segs: list[np.ndarray | None] = []
    for entry in tqdm(entries, desc="examples", unit="case", disable=not progress):
        try:
            memo: dict = {}
            x = case_example(entry, offsets, cache, memo)
            st = case_tumor_stats(entry, cache, memo)
            m = case_seg(entry, offsets, cache, memo) if with_seg else None
        except CaseError as exc:
            log.warning("skipping %s: %s", entry.case_id, exc)
            failed.append((entry.case_id, str(exc)))
            continue
        images.append(x)
        stats.append(st)
        segs.append(m)
        ids.append(entry.case_id)
        labels.append(CLASSES.index(entry.label) if entry.label in CLASSES else -1)
        ages.append(np.nan if entry.age_days is None else float(entry.age_days))
    stacked = np.stack(images) if images else np.zeros((0, len(offsets), *IMAGE_SHAPE), STORAGE_DTYPE)
    seg = None
    if with_seg and segs and all(m is not None for m in segs):
        seg = np.stack(segs)
    elif with_seg:
        missing = sum(m is None for m in segs)
        log.warning(
            "%d of %d cases have no ground-truth mask: training without the segmentation target", missing, len(segs)
        )
    tumour = np.stack(stats) if stats else np.zeros((0, len(TUMOR_STATS)), np.float32)
    return Examples(
        ids, stacked, np.array(labels, np.int32), np.array(ages, np.float32), tuple(offsets), failed, seg, tumour
    )


def split_id(case_ids: Sequence[str]) -> str:
    """Identity of an evaluation split (sorted case IDs), to compare models on the same cases."""
    return hashlib.sha256(json.dumps(sorted(case_ids)).encode()).hexdigest()[:16]
