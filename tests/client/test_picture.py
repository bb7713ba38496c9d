"""The explanation figure and the PNG writer: a decodable PNG, the heat map where the attribution is,
the outline where the tumour mask's edge is."""

import struct
import zlib

import numpy as np
import pytest

from radpath.client.picture import explanation_figure, png_bytes


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    pos, idat = 8, b""
    while pos < len(png):
        n = struct.unpack(">I", png[pos : pos + 4])[0]
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + n]
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_png_roundtrip():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(_decode(png_bytes(rgb)), rgb)


def test_figure_shows_heat_and_outline():
    img = np.zeros((224, 224, 8), np.float32)
    img[40:180, 40:180] = 0.5
    att = np.zeros((224, 224, 2), np.float32)
    att[100:120, 100:120] = 1.0
    mask = np.zeros((224, 224, 2), bool)
    mask[60:90, 60:90] = True
    fig = _decode(png_bytes(explanation_figure(img, att, mask)))
    assert fig.shape == (448, 896, 3)  # one row per view, one column per sequence
    for r0 in (0, 224):
        for c0 in (0, 224, 448, 672):
            panel = fig[r0 : r0 + 224, c0 : c0 + 224].astype(int)
            assert panel[110, 110, 0] > panel[110, 110, 2] + 50  # heat: red over blue
            assert tuple(panel[60, 75]) == (0, 255, 255)  # outline on the mask's edge
            assert tuple(panel[75, 75]) != (0, 255, 255)  # not inside it
            assert panel[150, 150, 0] == panel[150, 150, 2]  # grey where no attribution


def test_each_view_row_gets_its_own_map_and_outline():
    img = np.full((224, 224, 8), 0.5, np.float32)
    att = np.zeros((224, 224, 2), np.float32)
    att[100:120, 100:120, 1] = 1.0  # only the tumour view's map
    mask = np.zeros((224, 224, 2), bool)
    mask[60:90, 60:90, 0] = True  # only the brain view's outline
    fig = _decode(png_bytes(explanation_figure(img, att, mask))).astype(int)
    assert fig[110, 110, 0] == fig[110, 110, 2] and fig[224 + 110, 110, 0] > fig[224 + 110, 110, 2] + 50
    assert tuple(fig[60, 75]) == (0, 255, 255) and tuple(fig[224 + 60, 75]) != (0, 255, 255)


def test_figure_refuses_maps_without_a_view_axis():
    with pytest.raises(ValueError, match="one map per view"):
        explanation_figure(np.zeros((224, 224, 8), np.float32), np.zeros((224, 224), np.float32))
