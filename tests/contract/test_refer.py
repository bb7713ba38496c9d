"""The refer policy (contract.refer): one place, read by the client, the cohort CSV and the web page."""

from radpath.contract.refer import MIN_THRESHOLD_CASES, NOT_ASSESSED, REFER_CODES, refer_reasons, threshold_assessed

SURE = {"A": 0.05, "O": 0.05, "G": 0.90}


def test_a_confident_answer_on_clean_input_stands():
    assert refer_reasons(SURE, 0.8, []) == []


def test_below_the_threshold_refers():
    (reason,) = refer_reasons({"A": 0.1, "O": 0.2, "G": 0.7}, 0.8, [])
    assert reason.startswith("low confidence: top probability 0.70")


def test_not_assessed_refers_every_answer():
    assert threshold_assessed(0.34) and threshold_assessed(1.0)
    for threshold in (None, NOT_ASSESSED, 0.0):  # 0.0: what exports before this rule wrote for "none"
        assert not threshold_assessed(threshold)
        reasons = refer_reasons(SURE, threshold, [])
        assert len(reasons) == 1 and "not assessed" in reasons[0] and str(MIN_THRESHOLD_CASES) in reasons[0]


def test_near_uniform_always_refers_even_under_a_low_threshold():
    reasons = refer_reasons({"A": 0.30, "O": 0.28, "G": 0.42}, 0.34, [])
    assert len(reasons) == 1 and "uniform" in reasons[0]
    assert refer_reasons({"A": 0.25, "O": 0.31, "G": 0.44}, 0.34, []) == []  # 0.44 - 1/3 > 0.1


def test_out_of_training_warnings_refer_each_with_its_reason():
    for code in (
        "resampled",
        "near-zero-background",
        "not-skull-stripped",
        "swap-flair-t2",
        "swap-t1-t1ce",
        "no-tumour",
        "tumour-uncertain",
    ):
        assert code in REFER_CODES
    warnings = [
        {"code": "resampled", "message": "voxel size 1x1x8 mm"},
        {"code": "near-zero-background", "message": "background is not exactly zero"},
        {"code": "some-future-note", "message": "informative only"},
    ]
    reasons = refer_reasons(SURE, 0.5, warnings)
    assert reasons == [
        "input warning resampled: voxel size 1x1x8 mm",
        "input warning near-zero-background: background is not exactly zero",
    ]
