"""Clinical input: a DICOM study (folder or zip) or four native NIfTI -> a case in the release layout.

    from radpath.prepare import prepare_study
    p = prepare_study("study.zip", "cohort/Radiology", "CASE_001")   # {"flair": "5"} to choose a series
    p.files["flair"], p.report["sequences"], p.qc_png

    from radpath.prepare import prepare_cohort                        # a folder of studies
    root, failed = prepare_cohort("studies/", "prepared/")            # prepared/Radiology/<ID>/...

Needs the `prepare` extra (pydicom, SimpleITK, Pillow); the SRI24 atlas ships inside the package.
Importing this package is light (the client's parsers import `radpath.prepare.cli`): the heavy
modules load on first use of a name below.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "prepare_study": "pipeline",
    "Prepared": "pipeline",
    "PREPARE_VERSION": "pipeline",
    "STAGES": "pipeline",
    "prepare_cohort": "cohort",
    "StudyError": "errors",
    "SeriesAssignmentError": "errors",
    "UnsupportedSeriesError": "errors",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> object:
    if name not in _NAMES:
        raise AttributeError(f"module 'radpath.prepare' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
