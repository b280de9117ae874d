"""Issue 10: when a referring request is missed, did no query find the thing, or did the phrase pick
the wrong query?

    python scripts/analysis/miss_queries.py --data DIR [DIR ...] [--model DIR]

For every referring request of a shapes-world folder whose mask misses (IoU < 0.5), the IoU of each of
the decoder's queries' masks with the truth (edges snapped as shipped), and where the best of them
ranks by the phrase's class probability, the score refseg picks its query by (`tasks/refseg.py`).
"""

from __future__ import annotations

import sys

import numpy as np

sys.path.insert(0, ".")
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.tasks import refseg  # noqa: E402
from xsam_core.tasks.common import class_probs  # noqa: E402


def main(argv=None) -> int:
    roots, p = folders_and_predictor(__doc__, argv)
    seen = {}
    decode = refseg.best_query_masks
    refseg.best_query_masks = lambda ctx, paint: decode(seen.update(ctx=ctx) or ctx, paint)  # keep the context
    for root in roots:
        misses = found = 0
        for image, r, anns in shapes.task_requests([root], "refseg"):
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
            print(f"  image {r['image_id']} {r['text']!r}: best query IoU {ious[best]:.2f}, class prob "
                  f"{probs[best]:.2f}, rank {rank} of {len(probs)}; the chosen query's prob {probs.max():.2f}")
        print(f"{root}: {misses} referring requests missed, {found} with a query whose mask is right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
