"""Binary masks: COCO RLE, bounding boxes and unions, one helper each (numpy and pycocotools only).

A mask is a bool numpy array [H, W] (anything numpy turns into one is accepted).

Boxes are in integer pixels, `x` the column and `y` the row. `mask_box` gives the one convention the
core computes, `[x0, y0, x1, y1]` with `x1, y1` *exclusive* (one past the last pixel: detectron2's
`BitMasks.get_bounding_boxes`, what the official post-processing reports); two tiny conversions give
the others in use, from that box:

* `box_xywh`: COCO's `[x, y, w, h]` (annotation files, prediction JSON), `[0, 0, 0, 0]` when empty;
* `box_corners`: the *inclusive* corners `[x0, y0, x1, y1]` of the first and last pixels, the
  prompts-JSON box (docs/prompts-json.md: a box covers `x0..x1` and `y0..y1` both included).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pycocotools import mask as mask_utils


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a mask, `{"size": [H, W], "counts": str}` (JSON-ready; pycocotools reads it too)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=bool), dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Bool [H, W] mask of a COCO RLE (`counts` as str or bytes). Raises pycocotools' errors on corrupt counts."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode()
    return mask_utils.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)


def mask_box(mask: np.ndarray) -> list[int] | None:
    """`[x0, y0, x1, y1]` with exclusive max (see the module docstring); None when the mask is empty."""
    mask = np.asarray(mask, dtype=bool)
    xs, ys = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    if len(xs) == 0:
        return None
    return [int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1]


def box_xywh(box: list[int] | None) -> list[int]:
    """An exclusive-max box → COCO `[x, y, w, h]`; None (an empty mask) → `[0, 0, 0, 0]`, as pycocotools'
    `toBbox` gives for an empty RLE."""
    if box is None:
        return [0, 0, 0, 0]
    x0, y0, x1, y1 = box
    return [x0, y0, x1 - x0, y1 - y0]


def box_corners(box: list[int] | None) -> list[int] | None:
    """An exclusive-max box → the inclusive corners `[x0, y0, x1, y1]` of its first and last pixels."""
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return [x0, y0, x1 - 1, y1 - 1]


def union(masks: Iterable[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Pixel-wise OR of masks of the given [H, W] shape (all False when there are none)."""
    out = np.zeros(shape, dtype=bool)
    for m in masks:
        out |= np.asarray(m, dtype=bool)
    return out
