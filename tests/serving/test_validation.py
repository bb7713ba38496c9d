"""LoadedVersion's own checks, with a stand-in signature function (no SavedModel needed)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from radpath.contract.errors import InvalidArgument, ModelFailure  # noqa: E402
from radpath.serving.model_registry import LoadedVersion  # noqa: E402


def _version(fn, compiled=(1, 2, 4, 8)):
    spec = {"image": tf.TensorSpec([None, 6, 6, 2], tf.float32), "age_days": tf.TensorSpec([None], tf.float32)}
    return LoadedVersion("m", 1, None, fn, spec, ["probabilities"], None, compiled)


def _inputs(rows):
    return {"image": np.zeros((rows, 6, 6, 2), np.float32), "age_days": np.full(rows, 100.0, np.float32)}


def test_runs_are_padded_or_split_to_compiled_sizes():
    seen = []

    def fn(image, age_days):
        seen.append(int(image.shape[0]))
        return {"probabilities": tf.fill([image.shape[0], 3], 1 / 3)}

    lv = _version(fn)
    for rows in (1, 3, 5, 8, 11, 20):
        assert lv.run(_inputs(rows))["probabilities"].shape == (rows, 3)
    assert set(seen) <= {1, 2, 4, 8}, seen


@pytest.mark.parametrize(
    "inputs, pattern",
    [
        ({}, "has no inputs"),
        ({"image": np.zeros((1, 6, 6, 2), np.float32)}, r"missing \['age_days'\]"),
        ({**_inputs(1), "x": np.zeros(1, np.float32)}, r"unknown \['x'\]"),
        ({**_inputs(1), "image": np.zeros((1, 6, 6, 2), np.float64)}, "must be float32, got float64"),
        ({**_inputs(1), "image": np.zeros((1, 6, 6), np.float32)}, "must have shape"),
        ({**_inputs(1), "age_days": np.float32(3).reshape(())}, "got a scalar"),
        ({**_inputs(2), "age_days": np.zeros(3, np.float32)}, "disagree on the batch size"),
        (_inputs(0), "batch of 0 rows"),
        (_inputs(17), r"batch of 17 rows; this server takes 1..16"),
        ({**_inputs(1), "age_days": np.array([np.nan], np.float32)}, "'age_days' holds 1 NaN or infinite"),
    ],
)
def test_validate_names_the_problem(inputs, pattern):
    lv = _version(lambda **kw: pytest.fail("must not run"))
    with pytest.raises(InvalidArgument, match=pattern):
        lv.validate(inputs, max_rows=16)


def test_non_finite_output_is_a_model_failure_not_an_answer():
    lv = _version(lambda image, age_days: {"probabilities": tf.fill([image.shape[0], 3], float("nan"))})
    with pytest.raises(ModelFailure, match="non-finite 'probabilities'"):
        lv.run(_inputs(1))
