"""Issue 10: does visual grounding find the things like the prompted one, or only the prompted one?

    python scripts/analysis/vgd_recall.py --data DIR [DIR ...] [--model DIR]

Runs every vgdseg request of shapes-world folders through `Predictor.predict` and splits its target
things in two: the one under a region's prompt, and the others of the prompted shape ("all objects
like this one"). For each group: how much of a thing the predicted union covers (mean), and how
often it is found (covered >= 50 %). Also the mIoU of requests whose targets are only the prompted
things against those that hold others too, and the share of such requests: the signal that teaches
"like" rather than "this".
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.visual_prompts import draw_item  # noqa: E402
from xsam_core.masks import union  # noqa: E402

FOUND = 0.5  # share of a thing the prediction must cover to count as found


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--model")
    args = ap.parse_args(argv)
    predictor = Predictor.load(args.model)

    cover = collections.defaultdict(list)  # "prompted" / "alike" → covered shares
    scores = collections.defaultdict(list)  # "prompted only" / "with others" → request IoU
    for root in args.data:
        coco, requests = shapes.load_dataset(root)
        images = {im["id"]: im for im in coco["images"]}
        masks = {a["id"]: shapes.annotation_mask(a) for a in coco["annotations"]}
        for r in (r for r in requests if r["task"] == "vgdseg"):
            image = shapes.dataset_image(root, images[r["image_id"]])
            h, w = image.shape[:2]
            pred = predictor.predict(image, "vgdseg", "", r["prompts"])
            got = union([s.mask for s in pred.official_segments], (h, w))
            prompted = set()
            for prompt, things in zip(r["prompts"], r["targets_per_region"]):
                stroke = draw_item(prompt, h, w)
                prompted.add(max(things, key=lambda i: (stroke & masks[i]).sum()))
            for i in r["targets"]:
                cover["prompted" if i in prompted else "alike"].append((got & masks[i]).sum() / masks[i].sum())
            truth = union((masks[i] for i in r["targets"]), (h, w))
            scores["with others" if len(r["targets"]) > len(prompted) else "prompted only"].append(iou(got, truth))

    print(f"{'targets':<10} {'n':>5} {'covered':>8} {'found':>6}")
    for name in ("prompted", "alike"):
        c = np.array(cover[name])
        print(f"{name:<10} {len(c):>5} {c.mean():>8.3f} {(c >= FOUND).mean():>6.2f}")
    total = sum(len(v) for v in scores.values())
    for name in ("prompted only", "with others"):
        print(f"requests {name}: {len(scores[name])} ({len(scores[name]) / total:.0%}), mIoU {np.mean(scores[name]):.3f}")


if __name__ == "__main__":
    main()
