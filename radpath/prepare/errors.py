"""Errors of `radpath prepare`: one line that names the series (or file) and the fix.

Each is a `RadPathError`, so the CLI prints it as one line with exit code 1, `classify-cohort
--prepare` lists it as the study's reason, and the web app shows it on the job page.
"""

from __future__ import annotations

from radpath.contract.errors import RadPathError


class StudyError(RadPathError):
    """A study (DICOM folder or zip, or four native NIfTI) cannot be turned into a case."""


class SeriesAssignmentError(StudyError):
    """The four sequences cannot be told apart: one is missing, or two series fit one slot."""


class UnsupportedSeriesError(StudyError):
    """A series is of a kind this install cannot convert (2-D only, undecodable pixel data, ...)."""
