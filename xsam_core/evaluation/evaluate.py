"""Evaluate any model the core loads on a folder in the shapes-world format.

    python -m xsam_core evaluate --model PATH --data DIR [--task T ...] [--limit N] [--threshold 0.5]

Every request of the folder runs through `Predictor.predict` (real greedy generation, as a user
would get it) and is scored with the standard metric of its task:

| task | metric |
|---|---|
| refseg, reaseg, intseg | mIoU and cIoU of the predicted mask |
| vgdseg | mIoU of the union of predicted masks vs the union of targets; AP50 |
| genseg/panoptic | PQ (things, stuff) |
| genseg/semantic | mIoU over the listed classes |
| genseg/instance | mask AP, AP50 |
| gcgseg | phrase mIoU, grounded recall, caption recall |
| chat | exact-match accuracy |

It prints a table, then one JSON line per task (`{"task": ..., "metrics": {...}}`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .. import shapes
from ..inference.predictor import Predictor
from ..masks import union
from . import metrics

GENSEG_KEYS = {"panoptic": "genseg/panoptic", "semantic": "genseg/semantic", "instance": "genseg/instance"}


def task_key(request: dict) -> str:
    return GENSEG_KEYS[request["mode"]] if request["task"] == "genseg" else request["task"]


class Evaluator:
    """Streams (request, prediction) pairs of one dataset into the metric accumulators."""

    def __init__(self, coco: dict):
        self.categories = coco["categories"]
        self.cat_by_name = {c["name"]: c["id"] for c in self.categories}
        self.anns = {a["id"]: a for a in coco["annotations"]}
        self.metrics = {
            "chat": metrics.ExactMatch(), "refseg": metrics.MaskIoU(), "reaseg": metrics.MaskIoU(),
            "intseg": metrics.MaskIoU(), "vgdseg": metrics.VGDMetrics(), "gcgseg": metrics.GCGMetrics(),
            "genseg/panoptic": metrics.PanopticQuality(self.categories),
            "genseg/semantic": metrics.SemanticIoU(len(self.categories) + 1),
            "genseg/instance": metrics.InstanceAP(self.categories),
        }
        self.seen: set[str] = set()

    def mask(self, ann_id: int) -> np.ndarray:
        return shapes.annotation_mask(self.anns[ann_id])

    def targets_mask(self, ids, shape) -> np.ndarray:
        return union((self.mask(i) for i in ids), shape)

    def add(self, request: dict, pred) -> None:
        key = task_key(request)
        self.seen.add(key)
        shape = pred.image_size
        m = self.metrics[key]
        if key == "chat":
            m.add(pred.text, request["answer"])
        elif key in ("refseg", "reaseg", "intseg"):
            m.add(union(pred.masks, shape), self.targets_mask(request["targets"], shape))
        elif key == "vgdseg":
            m.add([(s.mask, s.score) for s in pred.segments], [self.mask(i) for i in request["targets"]])
        elif key == "gcgseg":
            gt = [(p["text"], self.targets_mask(p["targets"], shape)) for p in request["phrases"]]
            m.add(gt, [(s.label, s.mask) for s in pred.segments], _plain_caption(pred.text), request["caption"])
        elif key == "genseg/panoptic":
            m.add(self._pred_segments(pred), [(self.mask(i), self.anns[i]["category_id"]) for i in request["targets"]])
        elif key == "genseg/semantic":
            m.add(self._semantic_map(pred, shape), self._gt_semantic(request["targets"], shape))
        else:
            gt = [(self.mask(i), self.anns[i]["category_id"]) for i in request["targets"]]
            m.add(request["id"], self._pred_segments(pred, with_score=True), gt)

    def _category(self, label: str) -> int:
        return self.cat_by_name.get(label.strip().lower(), 0)

    def _pred_segments(self, pred, with_score: bool = False) -> list:
        out = [(s.mask, self._category(s.label), s.score) for s in pred.segments if s.mask.any()]
        return out if with_score else [(m, c) for m, c, _ in out]

    def _semantic_map(self, pred, shape) -> np.ndarray:
        out = np.zeros(shape, np.int64)
        for s in pred.segments:
            out[s.mask] = self._category(s.label)
        return out

    def _gt_semantic(self, ids, shape) -> np.ndarray:
        out = np.full(shape, 255, np.int64)  # classes not listed are not scored
        for i in ids:
            out[self.mask(i)] = self.anns[i]["category_id"]
        return out

    def results(self) -> dict[str, dict]:
        return {k: self.metrics[k].result() for k in self.metrics if k in self.seen}


def _plain_caption(text: str) -> str:
    return text.replace("<p>", "").replace("</p>", " ").replace("<SEG>", "").strip()


def evaluate(predictor: Predictor, root, tasks=None, limit: int | None = None, threshold: float = 0.5,
             progress=None) -> dict[str, dict]:
    coco, requests = shapes.load_dataset(root)
    images = {im["id"]: im for im in coco["images"]}
    chosen, counts = [], {}
    for r in requests:
        key = task_key(r)
        if (not tasks or r["task"] in tasks or key in tasks) and counts.get(key, 0) < (limit or len(requests)):
            chosen.append(r)
            counts[key] = counts.get(key, 0) + 1
    ev = Evaluator(coco)
    for request in (progress(chosen) if progress else chosen):
        image = shapes.dataset_image(root, images[request["image_id"]])
        pred = predictor.predict(image, request["task"], request["text"], request["prompts"], threshold=threshold)
        ev.add(request, pred)
    return ev.results()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder, weights file or hub id (default: the embedded model)")
    ap.add_argument("--tokenizer")
    ap.add_argument("--data", required=True, help="a folder written by `python -m xsam_core shapes generate`")
    ap.add_argument("--task", action="append", help="only these tasks (e.g. refseg, genseg/panoptic)")
    ap.add_argument("--limit", type=int, help="at most N requests per task")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--device")
    args = ap.parse_args(argv)
    from tqdm import tqdm

    predictor = Predictor.load(args.model, args.tokenizer, device=args.device)
    start = time.perf_counter()
    results = evaluate(predictor, args.data, args.task, args.limit, args.threshold,
                       progress=lambda xs: tqdm(xs, desc="evaluate", file=sys.stderr))
    print(metrics.format_table(results))
    for key, values in results.items():
        print(json.dumps({"task": key, "metrics": _scalars(values)}))
    print(f"# {predictor.name} on {args.data}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _scalars(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in values.items()
            if not isinstance(v, dict)}

