"""Issue 10: where do mask errors lie, and how much does snapping edges to the image (`mask_snap`) recover?

    python scripts/analysis/mask_edges.py --data DIR [DIR ...] [--model DIR] [--radii 0,1,2,3] [--ceiling]

Per shapes-world folder and snap radius (in mask-grid cells; 0 = X-SAM's bilinear upsample):
referring mIoU, how many requests miss (IoU < 0.5), and where the error pixels of the others lie
(within 1.5 px of the true boundary, 1.5-3 px, farther); then referring / interactive / PQ / VGD
through `evaluate`, the numbers the model card's radius table gives.

With `--ceiling`, first what the folder's pixels allow at all, per thing (no model): its true mask
taken to the model's mask grid and back through the predictor's path, upsampled and snapped (a
perfect model's masks), and a colour oracle that is told the true boundary to 2 px and the thing's
and its surround's mean colours and gives each pixel of that band the nearer one.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.evaluate import evaluate  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import load_image, sam_view  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.tasks.common import to_canvas, to_original  # noqa: E402
from xsam_core.tasks.edges import EdgeSnap, snap_radius  # noqa: E402

TASKS = ["refseg", "intseg", "genseg/panoptic", "vgdseg"]
GRID_STRIDE = 2  # canvas pixels per mask-grid cell of the embedded model (a 128 x 192 canvas: 64 x 96 cells)


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


def grid_mask(truth: np.ndarray, scaled: tuple, canvas: tuple) -> torch.Tensor:
    """A true mask as a perfect model's mask logits at the original size: area-resized to the
    canvas's mask grid (GRID_STRIDE canvas pixels a cell) and back the predictor's way."""
    on_canvas = np.zeros(canvas, np.float32)
    on_canvas[:scaled[0], :scaled[1]] = cv2.resize(truth.astype(np.float32), scaled[::-1], interpolation=cv2.INTER_AREA)
    grid = cv2.resize(on_canvas, (canvas[1] // GRID_STRIDE, canvas[0] // GRID_STRIDE), interpolation=cv2.INTER_AREA)
    logits = torch.logit(torch.from_numpy(grid).clamp(1e-4, 1 - 1e-4))[None, None]
    return to_original(to_canvas(logits, canvas)[0], scaled, truth.shape)


def colour_oracle(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The true mask with its 2-px boundary band redone by nearest mean colour (thing or surround)."""
    t8, ring = truth.astype(np.uint8), np.ones((3, 3), np.uint8)
    inner = cv2.erode(t8, ring, iterations=2).astype(bool)
    near = cv2.dilate(t8, ring, iterations=2).astype(bool)
    surround = cv2.dilate(t8, ring, iterations=4).astype(bool) & ~near
    if inner.sum() < 3 or surround.sum() < 3:
        return truth
    image = image.astype(np.float32)
    inside, outside = image[inner].mean(0), image[surround].mean(0)
    d = inside - outside
    return inner | (near & ~inner & (((image - outside) @ d) / max(d @ d, 1e-6) > 0.5))


def ceiling(root: str, proc: dict, cells: float) -> str:
    coco, _ = shapes.load_dataset(root)
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    things = {c["id"] for c in coco["categories"] if c.get("isthing", 1)}
    scores = np.zeros(3)
    anns = [a for a in coco["annotations"] if a["category_id"] in things]
    for a in anns:
        image = np.asarray(load_image(f"{root}/{files[a['image_id']]}"))
        truth = shapes.annotation_mask(a)
        scaled, canvas = sam_view(*truth.shape, proc)
        logits = grid_mask(truth, scaled, canvas)
        radius = snap_radius(cells, (canvas[0] // GRID_STRIDE, canvas[1] // GRID_STRIDE), canvas, scaled, truth.shape)
        snapped = EdgeSnap(image, radius)(logits)
        scores += [iou(logits[0].numpy() > 0, truth), iou(snapped[0].numpy() > 0, truth), iou(colour_oracle(image, truth), truth)]
    upsampled, snapped, colour = scores / max(len(anns), 1)
    return (f"ceiling over {len(anns)} things: true masks on the mask grid {upsampled:.3f} upsampled, {snapped:.3f} "
            f"snapped ({cells:g} cells); colour oracle {colour:.3f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--model")
    ap.add_argument("--radii", default="0,1,2,3", help="snap radii in mask-grid cells, comma-separated (empty: none)")
    ap.add_argument("--ceiling", action="store_true", help="first what each folder's pixels allow (no model)")
    args = ap.parse_args(argv)
    predictor = Predictor.load(args.model)
    if args.ceiling:
        cells = predictor.config.mask_snap or 3.0
        for root in args.data:
            print(f"{root}: {ceiling(root, predictor.config.sam_processor, cells)}", flush=True)
    for radius in [float(r) for r in args.radii.split(",") if r]:
        predictor.config.mask_snap = radius
        for root in args.data:
            scores = evaluate(predictor, root, TASKS)
            numbers = " / ".join(f"{scores[t]['pq' if t.startswith('genseg') else 'miou']:.3f}" for t in TASKS)
            print(f"radius {radius:g} {root}: {referring_errors(predictor, root)}; {' / '.join(TASKS)} {numbers}")


if __name__ == "__main__":
    main()
