"""Issue 10: how much of JPEG's referring edge loss a per-colour-block correction could win back.

    python scripts/analysis/jpeg_block_bound.py [--data runs/robust200v2/jpeg] [--task refseg]

A 4:2:0 JPEG stores colour as one mean per 2 x 2 block, so where an edge has colour contrast and little
brightness contrast, the block mean says how much of the block the shape covers but not which pixels.
For every request the shipped model hits (IoU >= 0.5) on the JPEG look's files (written by `python -m
xsam_core robustness --n 200 --seed 987654321 --looks jpeg --data runs/robust200v2`), this prints the
mean IoU as shipped and with an oracle that knows, for each 2 x 2 block, how many pixels the true mask
has in it and keeps that many of the block's pixels, the ones deepest inside the predicted mask (signed
distance to its edge). No estimate of the counts from the colour can do better than that oracle with
the same ranking. Analysis §50.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.evaluate import Evaluator  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.masks import union  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


def blocks(a: np.ndarray) -> np.ndarray:
    """[h, w] → [h/2, w/2, 4], zero-padded to even sides."""
    h, w = a.shape
    padded = np.zeros((-(-h // 2) * 2, -(-w // 2) * 2), a.dtype)
    padded[:h, :w] = a
    H, W = padded.shape
    return padded.reshape(H // 2, 2, W // 2, 2).transpose(0, 2, 1, 3).reshape(H // 2, W // 2, 4)


def keep_counts(pred: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per 2 x 2 block, the `counts` pixels deepest inside `pred` (ties: a fixed random order)."""
    m = pred.astype(np.uint8)
    depth = cv2.distanceTransform(m, cv2.DIST_L2, 3) - cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    depth = depth + np.random.default_rng(0).random(depth.shape) * 1e-3
    b = blocks(depth.astype(np.float32) + 1e6)  # padding (0) ranks last
    rank = np.argsort(np.argsort(-b, -1), -1)
    keep = (rank < counts[..., None]).astype(np.uint8)
    H, W = keep.shape[:2]
    full = keep.reshape(H, W, 2, 2).transpose(0, 2, 1, 3).reshape(H * 2, W * 2)
    return full[:pred.shape[0], :pred.shape[1]].astype(bool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="runs/robust200v2/jpeg")
    ap.add_argument("--task", default="refseg")
    args = ap.parse_args()
    root = Path(args.data)
    coco, requests = shapes.load_dataset(root)
    files = {im["id"]: root / im["file_name"] for im in coco["images"]}
    scorer, pred = Evaluator(coco), Predictor.load()
    shipped, oracle, misses = [], [], 0
    for r in (r for r in requests if r["task"] == args.task):
        out = pred.predict(files[r["image_id"]], r["task"], r["text"], r["prompts"])
        mask = union([s.mask for s in out.official_segments], out.image_size).astype(bool)
        truth = scorer.targets_mask(r["targets"], out.image_size).astype(bool)
        if iou(mask, truth) < 0.5:
            misses += 1
            continue
        shipped.append(iou(mask, truth))
        oracle.append(iou(keep_counts(mask, blocks(truth.astype(np.int64)).sum(-1)), truth))
    print(f"{args.task} on {root}: {len(shipped)} hits, {misses} misses")
    print(f"  mean IoU of the hits: shipped {np.mean(shipped):.4f}, true count per 2x2 block {np.mean(oracle):.4f}")


if __name__ == "__main__":
    main()
