"""Pictures for people, without an imaging library: PNG encoding and the explanation figure.

`radpath classify --explain OUT.png` and the web result page show the model input (the four
sequences at the max-tumour slice, as the model saw them) with the attribution map of the
predicted class over it and the tumour outline found by preprocessing, so a reader can tell at a
glance whether the model looked at the lesion. Only numpy and zlib: the light client stays light.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SEQUENCE_ORDER = ("flair", "t1", "t1ce", "t2")
OUTLINE_RGB = np.array([0, 255, 255], np.uint8)
Z_WINDOW = (-3.0, 6.0)
"""Robust-z window of the grey levels: brain tissue mid-grey, hyperintense lesions near white."""


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
    """uint8 [448, 448, 3]: 2 x 2 panels (FLAIR, T1 / T1ce, T2) of the model input `image`
    float32 [224, 224, 4], the attribution map [224, 224] in [0, 1] blended as a heat map where it is
    strong, and the tumour mask [224, 224] drawn as a cyan outline."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != len(SEQUENCE_ORDER):
        raise ValueError(f"image must be [H, W, 4], got {list(image.shape)}")
    lo, hi = Z_WINDOW
    outside = (image == 0).all(axis=-1)  # the model input's background is exactly 0: show it black
    panels = []
    for c in range(len(SEQUENCE_ORDER)):
        grey = np.where(outside, 0.0, np.clip((image[..., c] - lo) / (hi - lo), 0, 1))
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        if attribution is not None:
            a = np.clip(np.asarray(attribution, np.float32), 0, 1)
            weight = (alpha * np.clip(a / 0.25, 0, 1))[..., None]  # faint attributions stay transparent
            rgb = (1 - weight) * rgb + weight * _heat(a)
        out = (rgb * 255).astype(np.uint8)
        if tumour is not None:
            out[_outline(np.asarray(tumour, bool))] = OUTLINE_RGB
        panels.append(out)
    return np.concatenate([np.concatenate(panels[:2], axis=1), np.concatenate(panels[2:], axis=1)], axis=0)
