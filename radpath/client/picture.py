"""Pictures for people, without an imaging library: PNG encoding and the explanation figure.

`radpath classify --explain OUT.png` and the web result page show the model input (the four
sequences at the max-tumour slice, as the model saw them, one row per view: the whole brain, then
zoomed onto the tumour) with the attribution map of the predicted class over it and the tumour
outline found by preprocessing, so a reader can tell at a glance whether the model looked at the
lesion. Only numpy and zlib: the light client stays light.

One left/right convention for every picture the project draws (this figure, the web app's slice
panel): radiological, as a PACS shows it: patient's right on the image's left, anterior up, each
picture labelled R and L in its top corners (`radiological`, `label_sides`).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from radpath.contract.model_io import CHANNELS as SEQUENCE_ORDER
from radpath.contract.model_io import VIEWS, split_views

OUTLINE_RGB = np.array([0, 255, 255], np.uint8)
Z_WINDOW = (-3.0, 6.0)
"""Robust-z window of the grey levels: brain tissue mid-grey, hyperintense lesions near white."""
SEAM_GREY = 110
LABEL_RGB = np.array([255, 230, 0], np.uint8)
"""Side letters: yellow on a black box, readable over any grey level."""
_GLYPHS = {
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
}
"""5 x 7 bitmaps of the side letters (no font files in the light client)."""


def radiological(plane: np.ndarray) -> np.ndarray:
    """An axial plane [x, y] of the canonical RAS grid (`preprocess.case`) -> [rows, cols] as a PACS
    shows it: anterior up, the patient's right on the image's left. The model input's plane
    (`preprocess.model_input.to_model_plane`) has the same orientation."""
    return np.asarray(plane).T[::-1, ::-1]


def glyph(letter: str, scale: int = 1) -> np.ndarray:
    """bool [7 * scale, 5 * scale]: the bitmap of `letter` ("R" or "L")."""
    bits = np.array([[c == "1" for c in row] for row in _GLYPHS[letter]])
    return bits.repeat(scale, 0).repeat(scale, 1)


def label_scale(height: int, width: int) -> int:
    """Letter scale for a picture: 7 pixels per 100 of its smaller side, at least 7."""
    return max(1, min(height, width) // 100)


def label_sides(rgb: np.ndarray, left: str = "R", right: str = "L") -> np.ndarray:
    """Write `left` in the top-left and `right` in the top-right corner of uint8 [h, w, 3] (in place,
    and returned): the patient's sides of a radiological picture."""
    h, w, _ = rgb.shape
    k = label_scale(h, w)
    pad = k
    for letter, at_left in ((left, True), (right, False)):
        g = glyph(letter, k)
        gh, gw = g.shape
        r0 = pad
        c0 = pad if at_left else w - pad - gw
        rgb[max(r0 - k, 0) : r0 + gh + k, max(c0 - k, 0) : c0 + gw + k] = 0
        rgb[r0 : r0 + gh, c0 : c0 + gw][g] = LABEL_RGB
    return rgb


def png_bytes(rgb: np.ndarray) -> bytes:
    """A PNG (8-bit RGB) of a uint8 [h, w, 3] array."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _heat(v: np.ndarray) -> np.ndarray:
    """[h, w] in [0, 1] -> RGB float of a dark-red-to-yellow ramp (stays distinct from grey)."""
    r = np.clip(0.4 + 1.2 * v, 0, 1)
    g = np.clip(2 * v - 1, 0, 1)
    return np.stack([r, g, np.zeros_like(v)], axis=-1)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a bool mask (4-neighbourhood), no scipy needed."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def explanation_figure(
    image: np.ndarray, attribution: np.ndarray | None = None, tumour: np.ndarray | None = None, alpha: float = 0.55
) -> np.ndarray:
    """uint8 [224 * len(VIEWS), 896, 3]: one row per view of the model input `image` float32
    [224, 224, len(VIEWS) * 4] (the whole brain, then zoomed onto the tumour), one panel per sequence
    (FLAIR, T1, T1ce, T2); the attribution maps [224, 224, len(VIEWS)] in [0, 1] blended as a heat map
    where they are strong, and the tumour masks [224, 224, len(VIEWS)] drawn as a cyan outline. The
    model input is already radiological (patient's right on the left); each panel is labelled R / L."""
    image = np.asarray(image, np.float32)
    n_views, n_seq = len(VIEWS), len(SEQUENCE_ORDER)
    if image.ndim != 3 or image.shape[-1] != n_views * n_seq:
        raise ValueError(
            f"image must be [H, W, {n_views * n_seq}] ({n_views} views x {n_seq} sequences), got {list(image.shape)}"
        )
    for name, extra in (("attribution", attribution), ("tumour", tumour)):
        if extra is not None and np.shape(extra) != (*image.shape[:2], n_views):
            raise ValueError(f"{name} must be [H, W, {n_views}] (one map per view), got {list(np.shape(extra))}")
    lo, hi = Z_WINDOW
    views = split_views(image)  # [H, W, V, C]
    rows = []
    for v in range(n_views):
        outside = (views[:, :, v] == 0).all(axis=-1)  # the model input's background is exactly 0: show it black
        panels = []
        for c in range(n_seq):
            grey = np.where(outside, 0.0, np.clip((views[:, :, v, c] - lo) / (hi - lo), 0, 1))
            rgb = np.repeat(grey[..., None], 3, axis=-1)
            if attribution is not None:
                a = np.clip(np.asarray(attribution[..., v], np.float32), 0, 1)
                weight = (alpha * np.clip(a / 0.25, 0, 1))[..., None]  # faint attributions stay transparent
                rgb = (1 - weight) * rgb + weight * _heat(a)
            out = (rgb * 255).astype(np.uint8)
            if tumour is not None:
                out[_outline(np.asarray(tumour[..., v], bool))] = OUTLINE_RGB
            panels.append(label_sides(out))
        rows.append(np.concatenate(panels, axis=1))
    fig = np.concatenate(rows, axis=0)
    h, w = image.shape[:2]
    for k in range(1, n_views):  # a thin line between the panels, so each panel's "L" and its
        fig[k * h - 1 : k * h + 1, :] = SEAM_GREY
    for k in range(1, n_seq):  # neighbour's "R" do not read as one label
        fig[:, k * w - 1 : k * w + 1] = SEAM_GREY
    return fig
