"""Issue 10: how well can a mask grid of a given side fit the shapes at all? The ceiling on mask IoU.

    python scripts/analysis/mask_ceiling.py runs/robust-data [--looks plain aspect] [--grids 32 64]

For each thing, the G x G mask logits over the padded SAM canvas (longest side 128, the embedded
model's input) that fit its true mask best, taken back the way the predictor takes a model's logits
(bilinear to the canvas, crop, bilinear to the original size, cut at 0): fitted by gradient descent on
the pixel-wise cross-entropy. The mean IoU of the fitted masks with the true ones is what a perfect
model could reach on that grid; it bounds every mask-scored task. The embedded model's mask logits were
a 32 x 32 grid until run 12.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as coco_mask

sys.path.insert(0, ".")
from xsam_core.inference.processing import sam_view  # noqa: E402
from xsam_core.tasks.common import to_canvas, to_original  # noqa: E402

CANVAS = 128


def best_fit_iou(mask: np.ndarray, grid: int, steps: int = 150) -> float:
    h, w = mask.shape
    scaled, _ = sam_view(h, w, {"longest_edge": CANVAS})
    truth = torch.from_numpy(mask > 0)
    logits = torch.zeros(1, 1, grid, grid, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.5)
    for _ in range(steps):
        back = to_original(to_canvas(logits, CANVAS)[0], scaled, (h, w))[0]
        loss = F.binary_cross_entropy_with_logits(back, truth.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        fitted = to_original(to_canvas(logits, CANVAS)[0], scaled, (h, w))[0] > 0
    return float((fitted & truth).sum() / (fitted | truth).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", help="a robustness folder: one shapes-world folder per look")
    ap.add_argument("--looks", nargs="+", default=["plain", "size", "aspect"])
    ap.add_argument("--grids", type=int, nargs="+", default=[32, 48, 64])
    ap.add_argument("--things", type=int, default=100, help="the first N things of each look")
    args = ap.parse_args()
    print("look     " + "".join(f"{g:>8}" for g in args.grids))
    for look in args.looks:
        coco = json.loads((Path(args.data) / look / "annotations.json").read_text())
        things = {c["id"] for c in coco["categories"] if c["isthing"]}
        masks = [coco_mask.decode(a["segmentation"]) for a in coco["annotations"] if a["category_id"] in things]
        print(f"{look:9}" + "".join(f"{np.mean([best_fit_iou(m, g) for m in masks[: args.things]]):8.3f}" for g in args.grids))


if __name__ == "__main__":
    main()
