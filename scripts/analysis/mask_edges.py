"""Issue 10: where do mask errors lie, and how much does snapping edges to the image (`mask_snap`) recover?

    python scripts/analysis/mask_edges.py --data DIR [DIR ...] [--model DIR] [--radii 0,1,2,3]

Per shapes-world folder and snap radius (in mask-grid cells; 0 = X-SAM's bilinear upsample):
referring mIoU, how many requests miss (IoU < 0.5), and where the error pixels of the others lie
(within 1.5 px of the true boundary, 1.5-3 px, farther); then referring / interactive / PQ / VGD
through `evaluate`, the numbers the model card's radius table gives.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.evaluate import evaluate  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import load_image  # noqa: E402
from xsam_core.masks import union  # noqa: E402

TASKS = ["refseg", "intseg", "genseg/panoptic", "vgdseg"]


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    """Each pixel's distance to the mask's boundary, inside and out."""
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    return np.where(mask, inside, outside)


def referring_errors(predictor: Predictor, root: str) -> str:
    coco, requests = shapes.load_dataset(root)
    anns = {a["id"]: a for a in coco["annotations"]}
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    ious, split = [], np.zeros(3)
    for r in requests:
        if r["task"] != "refseg":
            continue
        image = np.asarray(load_image(f"{root}/{files[r['image_id']]}"))
        pred = predictor.predict(image, "refseg", r["text"], r["prompts"])
        truth = union([shapes.annotation_mask(anns[i]) for i in r["targets"]], image.shape[:2])
        mask = union([s.mask for s in pred.official_segments], image.shape[:2])
        ious.append(iou(mask, truth))
        if ious[-1] >= 0.5:
            d = boundary_distance(truth)[mask ^ truth]
            split += [(d <= 1.5).sum(), ((d > 1.5) & (d <= 3)).sum(), (d > 3).sum()]
    share = split / max(split.sum(), 1)
    return (f"refseg {np.mean(ious):.3f}, misses {sum(v < 0.5 for v in ious)} of {len(ious)}, error within "
            f"1.5 px {share[0]:.0%}, 1.5-3 px {share[1]:.0%}, farther {share[2]:.0%}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--model")
    ap.add_argument("--radii", default="0,1,2,3", help="snap radii in mask-grid cells, comma-separated")
    args = ap.parse_args(argv)
    predictor = Predictor.load(args.model)
    for radius in map(float, args.radii.split(",")):
        predictor.config.mask_snap = radius
        for root in args.data:
            scores = evaluate(predictor, root, TASKS)
            numbers = " / ".join(f"{scores[t]['pq' if t.startswith('genseg') else 'miou']:.3f}" for t in TASKS)
            print(f"radius {radius:g} {root}: {referring_errors(predictor, root)}; {' / '.join(TASKS)} {numbers}")


if __name__ == "__main__":
    main()
