"""One left/right convention for every picture: radiological (patient's right on the image's left,
as a PACS shows it), each labelled R / L. Checked with a tumour drawn in one hemisphere only."""

from __future__ import annotations

import numpy as np
import pytest

from radpath.client.picture import explanation_figure, glyph, label_scale, radiological
from radpath.contract.model_io import CHANNELS, VIEWS
from radpath.preprocess import find_tumor, load_case, tumor_mask
from radpath.preprocess.model_input import to_model_plane
from radpath.web.artefacts import OUTLINE_RGB, slice_image
from tests.web.conftest import write_one_sided_case


def _columns(pixels: np.ndarray) -> np.ndarray:
    return np.nonzero(pixels)[1]


def _has_letter(rgb: np.ndarray, letter: str, at_left: bool) -> bool:
    k = label_scale(*rgb.shape[:2])
    g = glyph(letter, k)
    c0 = k if at_left else rgb.shape[1] - k - g.shape[1]
    block = rgb[k : k + g.shape[0], c0 : c0 + g.shape[1]]
    return bool(((block.sum(-1) > 0) == g).all())


def test_radiological_puts_the_patients_right_on_the_left_and_anterior_up():
    plane = np.zeros((10, 12))  # [x (left -> right), y (posterior -> anterior)]
    plane[9, 11] = 1  # the patient's right, anterior
    shown = radiological(plane)
    assert shown.shape == (12, 10) and shown[0, 0] == 1


@pytest.fixture(scope="module")
def right_sided(tmp_path_factory):
    case = load_case(write_one_sided_case(tmp_path_factory.mktemp("right")))
    tumor = find_tumor(case)
    assert tumor.found
    mask = tumor_mask(case)
    assert np.nonzero(mask)[0].min() > case.shape[0] / 2  # RAS: in the patient's right hemisphere
    return case, tumor, mask


def test_slice_panel_shows_a_right_sided_tumour_on_the_left_labelled_r_l(right_sided):
    case, tumor, mask = right_sided
    rgb = slice_image(case.volumes["flair"][:, :, tumor.index], mask[:, :, tumor.index])
    red = (rgb == np.array(OUTLINE_RGB, np.uint8)).all(-1)
    assert red.any() and _columns(red).max() < rgb.shape[1] / 2
    assert _has_letter(rgb, "R", at_left=True) and _has_letter(rgb, "L", at_left=False)
    assert not _has_letter(rgb, "L", at_left=True)


def test_explanation_shows_the_same_tumour_on_the_left_labelled_r_l(right_sided):
    case, tumor, mask = right_sided
    planes = np.stack(
        [to_model_plane(case, mask[:, :, tumor.index], order=0, view=v).astype(bool) for v in VIEWS], axis=-1
    )  # [H, W, views]
    image = np.repeat(np.where(planes, 2.0, 0.5).astype(np.float32), len(CHANNELS), axis=-1)  # view-major
    fig = explanation_figure(image, None, planes)
    cyan = (fig == np.array([0, 255, 255], np.uint8)).all(-1)
    assert fig.shape[:2] == (224 * len(VIEWS), 224 * len(CHANNELS))
    panels = [(r, c) for r in range(0, fig.shape[0], 224) for c in range(0, fig.shape[1], 224)]
    for r0, c0 in panels:
        panel = fig[r0 : r0 + 224, c0 : c0 + 224]
        assert cyan[r0 : r0 + 224, c0 : c0 + 224].any()
        if r0 == 224 * VIEWS.index(
            "brain"
        ):  # the tumour view is centred on the tumour: only the brain view tells sides
            assert _columns(cyan[r0 : r0 + 224, c0 : c0 + 224]).max() < 112
        assert _has_letter(panel, "R", at_left=True) and _has_letter(panel, "L", at_left=False)
