"""The QC picture of a prepared case: does each sequence sit on the atlas, is the brain mask right?

Rows: FLAIR, T1, T1ce, T2 as registered (skull still on), then the atlas T1. Columns: three axial
slices and one coronal, in the radiological convention (the patient's right on the picture's left,
labelled R and L; anterior up in axial views, superior up in the coronal one). Over every panel: the
brain mask's outline (cyan) and the atlas brain's outline (yellow, where it differs), so a shifted or
tilted registration shows as tissue crossing the lines. Pillow draws the labels; nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

MASK_RGB = (0, 230, 230)
ATLAS_RGB = (250, 210, 0)
PANEL = 200
LABEL_H = 22


def _axial(vol_ras: np.ndarray, k: int) -> np.ndarray:
    """[rows, cols] of axial slice k: anterior up, patient's right on the left (radiological)."""
    return vol_ras[::-1, ::-1, k].T


def _coronal(vol_ras: np.ndarray, j: int) -> np.ndarray:
    """[rows, cols] of coronal slice j: superior up, patient's right on the left."""
    return vol_ras[::-1, j, ::-1].T


def _grey(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    g = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    return np.repeat(g[..., None], 3, axis=2).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def _panel(img: np.ndarray, mask: np.ndarray, atlas_mask: np.ndarray, lo: float, hi: float) -> Image.Image:
    rgb = _grey(img, lo, hi)
    rgb[_outline(atlas_mask) & ~_outline(mask)] = ATLAS_RGB
    rgb[_outline(mask)] = MASK_RGB
    pic = Image.fromarray(rgb)
    scale = PANEL / max(pic.size)
    return pic.resize(
        (max(1, round(pic.size[0] * scale)), max(1, round(pic.size[1] * scale))), Image.Resampling.NEAREST
    )


def qc_picture(
    volumes_ras: dict[str, np.ndarray],
    atlas_ras: np.ndarray,
    mask_ras: np.ndarray,
    atlas_mask_ras: np.ndarray,
    out: Path,
    title: str,
) -> Path:
    """Write the PNG; every array is [x, y, z] in RAS+ on one grid."""
    zs = np.flatnonzero(mask_ras.any(axis=(0, 1)))
    ys = np.flatnonzero(mask_ras.any(axis=(0, 2)))
    z0, z1 = (int(zs[0]), int(zs[-1])) if zs.size else (0, mask_ras.shape[2] - 1)
    axial = [round(z0 + f * (z1 - z0)) for f in (0.3, 0.55, 0.8)]
    coronal = int(np.median(ys)) if ys.size else mask_ras.shape[1] // 2
    rows = [*volumes_ras.items(), ("atlas T1", atlas_ras)]
    font = ImageFont.load_default()
    pics: list[list[Image.Image]] = []
    for _name, vol in rows:
        inside = vol[mask_ras] if mask_ras.any() else vol.ravel()
        lo, hi = 0.0, float(np.percentile(inside, 99.5)) if inside.size else 1.0
        row = [_panel(_axial(vol, k), _axial(mask_ras, k), _axial(atlas_mask_ras, k), lo, hi) for k in axial]
        row.append(
            _panel(_coronal(vol, coronal), _coronal(mask_ras, coronal), _coronal(atlas_mask_ras, coronal), lo, hi)
        )
        pics.append(row)
    name_w = 70
    width = name_w + sum(p.size[0] + 4 for p in pics[0])
    height = LABEL_H * 2 + sum(max(p.size[1] for p in r) + 4 for r in pics) + 18
    sheet = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), title, fill=(255, 255, 255), font=font)
    x = name_w
    for c, head in enumerate([f"axial {k}" for k in axial] + [f"coronal {coronal}"]):
        draw.text((x + 4, LABEL_H), head, fill=(200, 200, 200), font=font)
        x += pics[0][c].size[0] + 4
    y = LABEL_H * 2
    for (name, _), row in zip(rows, pics):
        draw.text((4, y + 8), name, fill=(255, 255, 255), font=font)
        x = name_w
        for p in row:
            sheet.paste(p, (x, y))
            draw.text((x + 3, y + p.size[1] // 2 - 6), "R", fill=(255, 80, 80), font=font)
            draw.text((x + p.size[0] - 10, y + p.size[1] // 2 - 6), "L", fill=(255, 80, 80), font=font)
            x += p.size[0] + 4
        y += max(p.size[1] for p in row) + 4
    draw.text(
        (4, height - 14),
        "cyan: brain mask  yellow: atlas brain  radiological view (R = patient's right)",
        fill=(180, 180, 180),
        font=font,
    )
    sheet.save(out)
    return out
