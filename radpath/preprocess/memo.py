"""Once-per-case results of a preprocessing step, kept by the step that owns them.

`Case` is a plain value that imports no step; each step (brain mask, intensity statistics, tumour,
model-input square) keeps its own result per case object here, so a second call on the same case is
free and the modules import one way (case <- brain_mask <- normalize <- tumor_slice <- model_input).
Entries go when the case does (weak keys: a cohort run holds one case at a time).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from .case import Case

T = TypeVar("T")


class PerCase(Generic[T]):
    """`memo(case, compute)`: compute(case) once per case object, then the kept result."""

    def __init__(self) -> None:
        self._kept: weakref.WeakKeyDictionary[Case, T] = weakref.WeakKeyDictionary()

    def __call__(self, case: Case, compute: Callable[[Case], T]) -> T:
        try:
            return self._kept[case]
        except KeyError:
            result = self._kept[case] = compute(case)
            return result
