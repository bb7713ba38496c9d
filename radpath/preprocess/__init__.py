"""RadPath preprocessing: one library for training and serving, so the two can never skew.

    from radpath.preprocess import load_case, max_tumor_slice, model_input
    case = load_case("Radiology/CPM19_CBICA_AAB_1")
    x = model_input(case)            # float32 [224, 224, 8] at the max-tumour slice (two views)
    s = tumor_stats(case)            # float32 [32]: the whole tumour in 3-D (models that read them)

Any change to what these functions compute must bump PREPROCESSING_VERSION: the training example
cache is keyed by it, and every exported model records it (assets.extra/radpath.json).
"""

from radpath.contract.errors import CaseError, CohortError, LabelsError, RadPathError
from radpath.contract.model_io import CLASSES

from .case import SEQUENCES, Case
from .model_input import model_input, model_inputs
from .quality import case_warnings, quality_warnings
from .read_case import load_case
from .sanity import detection_warnings
from .tumor_slice import NoTumorFoundError, TumorSlice, find_tumor, max_tumor_slice, tumor_mask
from .tumor_stats import TUMOR_STATS_VERSION, tumor_stats

PREPROCESSING_VERSION = "4"

__all__ = [
    "CLASSES",
    "SEQUENCES",
    "Case",
    "CaseError",
    "CohortError",
    "LabelsError",
    "RadPathError",
    "NoTumorFoundError",
    "detection_warnings",
    "TumorSlice",
    "PREPROCESSING_VERSION",
    "find_tumor",
    "load_case",
    "case_warnings",
    "quality_warnings",
    "max_tumor_slice",
    "model_input",
    "model_inputs",
    "tumor_mask",
    "tumor_stats",
    "TUMOR_STATS_VERSION",
]
