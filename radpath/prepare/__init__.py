"""Clinical input: a DICOM study (folder or zip) or four native NIfTI -> a case in the release layout.

    from radpath.prepare import prepare_study
    p = prepare_study("study.zip", "cohort/Radiology", "CASE_001")   # {"flair": "5"} to choose a series
    p.files["flair"], p.report["sequences"], p.qc_png

Needs the `prepare` extra (pydicom, SimpleITK, Pillow); the SRI24 atlas ships inside the package.
"""

from .errors import SeriesAssignmentError, StudyError, UnsupportedSeriesError
from .pipeline import PREPARE_VERSION, STAGES, Prepared, prepare_study

__all__ = [
    "PREPARE_VERSION",
    "STAGES",
    "Prepared",
    "SeriesAssignmentError",
    "StudyError",
    "UnsupportedSeriesError",
    "prepare_study",
]
