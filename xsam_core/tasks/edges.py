"""Mask edges snapped to the image: the embedded model's own way of bringing mask logits to full size.

The embedded model's masks come from a grid of 2 px of its 160-px view a cell, so after the bilinear
upsample an edge may sit anywhere within about a cell of the true one: on held-out shapes scenes
90 % of the referring error pixels of JPEG scenes (53 % on plain ones) lie within 1.5 px of the true
boundary. A guided filter (He et al., 2010) with the image as guide fits the upsampled mask locally
as a linear function of the image's colours, so each edge moves onto the image's own edge within
the filter's radius (the embedded config's `mask_snap`, in grid cells: 3, chosen on held-out looks
in the model card). OpenCV contrib's `ximgproc` filter is used because it builds the guide's
statistics once and reuses them for every mask of a request (about 1 ms a mask on a 222-px image,
7 ms on a 640-px one); kornia's `guided_blur` recomputes them per mask (19 ms and 209 ms).

X-SAM's own checkpoints set no snap radius and are upsampled exactly as officially.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

# The guided filter's regulariser, for a guide in [0, 1]: colour differences with a standard deviation
# under about 0.03 (8 of 255) count as flat and are smoothed over; stronger ones hold an edge.
EPS = 1e-3
# A mask probability under this counts as none. Where a filter's windows hold no more than that, so does
# its output, so a mask is filtered only within the box of its support widened by two radii. At 1e-3 a
# click's faint tail (0.001-0.01, scattered far from the thing) could stretch the box over the whole image.
SUPPORT = 1e-2
# What OpenCV's guided filter over a colour image keeps per pixel: the guide, its means and its inverse
# covariance (3 + 3 + 6 float32 planes); measured, the process grows by about 54 B a pixel with one output.
WHOLE_FILTER_BYTES_PER_PIXEL = 48


def snap_radius(cells: float, lowres: tuple, canvas: tuple, scaled: tuple, original: tuple) -> int:
    """`cells` mask-grid cells in original-image pixels (at least 1): one cell is canvas/lowres pixels
    of the SAM canvas, on which the image takes `scaled` of `original`."""
    canvas_per_cell = canvas[-1] / lowres[-1]
    image_per_canvas = max(original) / max(scaled)
    return max(1, round(cells * canvas_per_cell * image_per_canvas))


class EdgeSnap:
    """A guided filter over one image, applied to any number of full-size mask maps. The Predictor keeps
    one per cached image, so the whole-image filter (12 ms on a 640 x 480 image, 65 ms on a 1080p one)
    is built once for all requests on it."""

    def __init__(self, image: np.ndarray, radius: int):
        self.image = np.ascontiguousarray(image)
        self.radius = radius
        self.whole = None  # the filter over the whole image, built when a map needs it

    def __call__(self, values: torch.Tensor, logits: bool = True) -> torch.Tensor:
        """Snap [N, H, W] maps at the image's size. Logits are filtered as probabilities (bounded, so a
        confident region does not outweigh its neighbours), each within its own box, and returned as
        logits; other values (class scores) are filtered whole as they are."""
        maps = (values.sigmoid() if logits else values).float().cpu().numpy()
        out = np.stack([self._snap(m, logits) for m in maps])
        out = torch.from_numpy(out).to(values.device)
        if not logits:
            return out.to(values.dtype)
        return torch.logit(out.clamp(1e-6, 1 - 1e-6)).to(values.dtype)

    def nbytes(self) -> int:
        whole = WHOLE_FILTER_BYTES_PER_PIXEL * self.image.shape[0] * self.image.shape[1] if self.whole is not None else 0
        return self.image.nbytes + whole

    def _snap(self, m: np.ndarray, local: bool) -> np.ndarray:
        box = self._box(m) if local else None
        if box is None:
            if self.whole is None:
                self.whole = self._build(self.image)
            return self.whole.filter(m)
        out = m.copy()
        y0, y1, x0, x1 = box
        if y1 > y0:
            out[y0:y1, x0:x1] = self._build(self.image[y0:y1, x0:x1]).filter(np.ascontiguousarray(m[y0:y1, x0:x1]))
        return out

    def _box(self, m: np.ndarray) -> tuple | None:
        """(y0, y1, x0, x1) around the map's support, empty where it has none; None where the box would
        cover most of the image (one filter over the whole image is then cheaper)."""
        ys, xs = np.nonzero(m > SUPPORT)
        if not len(ys):
            return 0, 0, 0, 0
        h, w = m.shape
        pad = 2 * self.radius + 1
        y0, y1, x0, x1 = max(0, ys.min() - pad), min(h, ys.max() + 1 + pad), max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)
        return None if (y1 - y0) * (x1 - x0) > h * w / 2 else (y0, y1, x0, x1)

    def _build(self, guide: np.ndarray):
        return cv2.ximgproc.createGuidedFilter(np.ascontiguousarray(guide), self.radius, EPS * 255 ** 2)
