"""The segmentation target of the auxiliary head: the generator's mask, on the model input's plane."""

import numpy as np

from radpath.contract.model_io import VIEWS, view_channels
from radpath.preprocess.cohort import read_cohort
from radpath.train.examples import SEG_CLASSES, build_examples


def test_masks_follow_the_image_and_are_cached(small_cohort, tmp_path):
    entries = read_cohort(small_cohort).labelled()[:4]
    ex = build_examples(entries, tmp_path, progress=False, with_seg=True)
    assert ex.seg is not None and ex.seg.dtype == np.uint8
    assert ex.seg.shape == (4, len(ex.offsets), 224, 224, len(VIEWS))
    assert ex.seg.max() < SEG_CLASSES
    for v, view in enumerate(VIEWS):  # in each view, the mask sits on that view's FLAIR-bright lesion
        centre = ex.seg[:, ex.centre, ..., v]
        flair = ex.images[:, ex.centre, ..., view_channels(view).start].astype(np.float32)
        tumour = centre > 0
        assert tumour.any(axis=(1, 2)).sum() >= 3  # the max-tumour slice shows the tumour
        brain = (flair != 0) & ~tumour
        assert flair[tumour].mean() > flair[brain].mean() + 0.5
    share = (ex.seg[:, ex.centre] > 0).mean(axis=(1, 2))  # [cases, views]: the zoom shows it larger
    assert (share[:, VIEWS.index("tumour")] >= share[:, VIEWS.index("brain")]).all()
    again = build_examples(entries, tmp_path, progress=False, with_seg=True)  # from the cache
    np.testing.assert_array_equal(again.seg, ex.seg)
    assert build_examples(entries, tmp_path, progress=False).seg is None
