"""Training examples from a cohort, built with the `preprocess` library only, cached on disk.

One example per case: the max-tumour slice and its neighbours, [n_offsets, *IMAGE_SHAPE] in
`contract.model_io.STORAGE_DTYPE` (float16: the model input of `preprocess.model_inputs`, no second
copy of any preprocessing; exact, because the model input contract rounds every value to float16
precision, which the client does too), plus class and age. The cache file is keyed by
PREPROCESSING_VERSION, the offsets and each case's file sizes and modification times, so a change to
the preprocessing or to a file rebuilds exactly what changed. Bad cases are listed (ID and reason)
and skipped, never silently dropped. The case ID is kept for
bookkeeping only; it never reaches the model.
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
from radpath.contract.model_io import CLASSES, IMAGE_SHAPE, STORAGE_DTYPE
from radpath.preprocess import PREPROCESSING_VERSION, find_tumor, load_case, model_inputs
from radpath.preprocess.cohort import CohortEntry

log = logging.getLogger(__name__)

DEFAULT_OFFSETS = (-2, -1, 0, 1, 2)


@dataclass
class Examples:
    """Arrays aligned on axis 0 (one row per usable case)."""

    case_ids: list[str]
    images: np.ndarray  # STORAGE_DTYPE [n, n_offsets, *IMAGE_SHAPE]
    labels: np.ndarray  # int32 [n], index into CLASSES (-1 if unknown)
    ages_days: np.ndarray  # float32 [n], NaN if unknown
    offsets: tuple[int, ...]
    failed: list[tuple[str, str]]

    def subset(self, idx: Sequence[int]) -> Examples:
        idx = np.asarray(idx, dtype=np.int64)
        return Examples(
            [self.case_ids[i] for i in idx], self.images[idx], self.labels[idx], self.ages_days[idx], self.offsets, []
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


def case_example(entry: CohortEntry, offsets: Sequence[int], cache_dir: Path | None) -> np.ndarray:
    """STORAGE_DTYPE [len(offsets), *IMAGE_SHAPE] for one case, from the cache when still valid."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{_fingerprint(entry)}|{tuple(offsets)}".encode()).hexdigest()[:24]
        path = cache_dir / f"v{PREPROCESSING_VERSION}" / f"{entry.case_id}-{key}.npy"
        if path.is_file():
            return np.load(path)
    case = load_case(entry.case_dir, entry.case_id, entry.age_days, entry.label)
    if not find_tumor(case).found:
        tumor = find_tumor(case)
        where = "the candidate's slice" if tumor.possible else "the brain's largest slice"
        log.warning("%s: no confident tumour; the example uses %s", entry.case_id, where)
    x = model_inputs(case, offsets).astype(STORAGE_DTYPE)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, x)
        tmp.replace(path)  # atomic: an interrupted run never leaves a half-written cache file
    return x


def build_examples(
    entries: Sequence[CohortEntry],
    cache_dir: str | Path | None,
    offsets: Sequence[int] = DEFAULT_OFFSETS,
    progress: bool = True,
) -> Examples:
    """Examples for `entries`; cases that fail their checks are reported in `failed` and skipped."""
    cache = Path(cache_dir) if cache_dir is not None else None
    ids, images, labels, ages, failed = [], [], [], [], []
    for entry in tqdm(entries, desc="examples", unit="case", disable=not progress):
        try:
            images.append(case_example(entry, offsets, cache))
        except CaseError as exc:
            log.warning("skipping %s: %s", entry.case_id, exc)
            failed.append((entry.case_id, str(exc)))
            continue
        ids.append(entry.case_id)
        labels.append(CLASSES.index(entry.label) if entry.label in CLASSES else -1)
        ages.append(np.nan if entry.age_days is None else float(entry.age_days))
    stacked = np.stack(images) if images else np.zeros((0, len(offsets), *IMAGE_SHAPE), STORAGE_DTYPE)
    return Examples(ids, stacked, np.array(labels, np.int32), np.array(ages, np.float32), tuple(offsets), failed)


def split_id(case_ids: Sequence[str]) -> str:
    """Identity of an evaluation split (sorted case IDs), to compare models on the same cases."""
    return hashlib.sha256(json.dumps(sorted(case_ids)).encode()).hexdigest()[:16]
