"""Issue 10: does visual grounding find the things like the prompted one, or only the prompted one?

    python scripts/analysis/vgd_recall.py --data DIR [DIR ...] [--model DIR]

Runs every vgdseg request of shapes-world folders through `Predictor.predict` and splits its target
things in two: the one under a region's prompt, and the others of the prompted shape ("all objects
like this one"). For each group: how much of a thing the predicted union covers (mean), and how
often it is found (covered >= 50 %). Then per kind of request (one or two regions; targets only the
prompted things, or others like them too: the signal that teaches "like" rather than "this"): the
share of requests, mIoU, precision (the share of the predicted union on targets), and how many
segments per request lie mostly on something that is not a target (a thing of another shape).
"""

from __future__ import annotations

import collections
import sys

import numpy as np

sys.path.insert(0, ".")
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.inference.visual_prompts import draw_item  # noqa: E402
from xsam_core.masks import union  # noqa: E402

FOUND = 0.5  # share of a thing the prediction must cover to count as found


def main(argv=None) -> None:
    folders, predictor = folders_and_predictor(__doc__, argv)

    cover = collections.defaultdict(list)  # "prompted" / "alike" → covered shares
    scores = collections.defaultdict(list)  # request kind → (IoU, precision, segments off the targets)
    for image, r, of_image in shapes.task_requests(folders, "vgdseg"):
        h, w = image.shape[:2]
        masks = {i: shapes.annotation_mask(of_image[i]) for i in r["targets"]}
        pred = predictor.predict(image, "vgdseg", "", r["prompts"])
        got = union([s.mask for s in pred.official_segments], (h, w))
        prompted = set()
        for prompt, things in zip(r["prompts"], r["targets_per_region"]):
            stroke = draw_item(prompt, h, w)
            prompted.add(max(things, key=lambda i: (stroke & masks[i]).sum()))
        for i in r["targets"]:
            cover["prompted" if i in prompted else "alike"].append((got & masks[i]).sum() / masks[i].sum())
        truth = union(masks.values(), (h, w))
        off = sum((s.mask & truth).sum() < 0.5 * s.mask.sum() for s in pred.official_segments)
        kind = f"{len(r['prompts'])} region(s), {'with others' if len(r['targets']) > len(prompted) else 'prompted only'}"
        scores[kind].append((iou(got, truth), (got & truth).sum() / max(got.sum(), 1), off))

    print(f"{'targets':<10} {'n':>5} {'covered':>8} {'found':>6}")
    for name in ("prompted", "alike"):
        c = np.array(cover[name])
        print(f"{name:<10} {len(c):>5} {c.mean():>8.3f} {(c >= FOUND).mean():>6.2f}")
    total = sum(len(v) for v in scores.values())
    print(f"\n{'requests':<30} {'n':>4} {'share':>6} {'mIoU':>6} {'precision':>9} {'off-target segments':>20}")
    for kind, rows in sorted(scores.items()):
        a = np.array(rows, dtype=float)
        print(f"{kind:<30} {len(a):>4} {len(a) / total:>6.0%} {a[:, 0].mean():>6.3f} {a[:, 1].mean():>9.3f} {a[:, 2].mean():>20.2f}")


if __name__ == "__main__":
    main()
