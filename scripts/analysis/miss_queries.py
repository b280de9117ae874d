"""Issue 10: when a referring request is missed, did no query find the thing, or did the phrase pick
the wrong query?

    python scripts/analysis/miss_queries.py --data DIR [DIR ...] [--model DIR]

For every referring request of a shapes-world folder whose mask misses (IoU < 0.5), the IoU of each of
the decoder's queries' masks with the truth (edges snapped as shipped), and where the best of them
ranks by the phrase's class probability, the score refseg picks its query by (`tasks/refseg.py`).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import load_image  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.tasks import refseg  # noqa: E402
from xsam_core.tasks.common import class_probs  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="shapes-world folders")
    ap.add_argument("--model", help="model folder (default: the embedded model)")
    args = ap.parse_args(argv)
    seen = {}
    decode = refseg.best_query_masks
    refseg.best_query_masks = lambda ctx, paint: decode(seen.update(ctx=ctx) or ctx, paint)  # keep the context
    p = Predictor.load(args.model)
    for root in args.data:
        coco, requests = shapes.load_dataset(root)
        anns = {a["id"]: a for a in coco["annotations"]}
        files = {im["id"]: im["file_name"] for im in coco["images"]}
        misses = found = 0
        for r in (r for r in requests if r["task"] == "refseg"):
            image = np.asarray(load_image(f"{root}/{files[r['image_id']]}"))
            pred = p.predict(image, "refseg", r["text"], r["prompts"])
            truth = union([shapes.annotation_mask(anns[i]) for i in r["targets"]], image.shape[:2])
            if iou(union([s.mask for s in pred.official_segments], image.shape[:2]), truth) >= 0.5:
                continue
            ctx = seen["ctx"]
            probs = class_probs(ctx.class_logits[0])[:, 0].float().cpu().numpy()
            masks = ctx.to_original(ctx.canvas(0, list(range(len(probs))))).sigmoid() > refseg.MASK_THRESHOLD
            ious = np.array([iou(m.cpu().numpy(), truth) for m in masks])
            best = int(ious.argmax())
            rank = int((probs > probs[best]).sum()) + 1
            misses, found = misses + 1, found + int(ious[best] >= 0.5)
            print(f"  {files[r['image_id']]} {r['text']!r}: best query IoU {ious[best]:.2f}, class prob "
                  f"{probs[best]:.2f}, rank {rank} of {len(probs)}; the chosen query's prob {probs.max():.2f}")
        print(f"{root}: {misses} referring requests missed, {found} with a query whose mask is right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
