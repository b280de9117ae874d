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
from pathlib import Path

import numpy as np

from .. import shapes
from ..inference.predictor import Predictor
from ..masks import union
from ..tasks import TASKS
from ..tasks.base import CLASS_MASKS, ONE_MASK, PHRASE_MASKS, SIMILAR_MASKS, TEXT
from . import metrics

# The report lists the tasks by the kind of their result in this order, then in the registry's order, then
# genseg's modes in the shapes world's order.
REPORT_ORDER = (TEXT, ONE_MASK, SIMILAR_MASKS, PHRASE_MASKS, CLASS_MASKS)


class Evaluator:
    """Streams (request, prediction) pairs of one dataset into the metric accumulators.

    The metric is the task's kind of result (`Task.output`): an answer, one mask, similar masks, phrase
    masks; class masks are scored per genseg mode (panoptic, semantic, instance), each its own row."""

    def __init__(self, coco: dict):
        self.categories = coco["categories"]
        self.cat_by_name = {c["name"]: c["id"] for c in self.categories}
        self.thing_ids = {c["id"] for c in self.categories if c["isthing"]}
        self.anns = {a["id"]: a for a in coco["annotations"]}
        self.metrics: dict[str, object] = {}  # shapes.task_key → accumulator
        self.order: dict[str, tuple] = {}  # shapes.task_key → its place in the report

    def mask(self, ann_id: int) -> np.ndarray:
        return shapes.annotation_mask(self.anns[ann_id])

    def targets_mask(self, ids, shape) -> np.ndarray:
        return union((self.mask(i) for i in ids), shape)

    def _new_metric(self, output: str, mode: str | None):
        if output == TEXT:
            return metrics.ExactMatch()
        if output == ONE_MASK:
            return metrics.MaskIoU()
        if output == SIMILAR_MASKS:
            return metrics.VGDMetrics()
        if output == PHRASE_MASKS:
            return metrics.GCGMetrics()
        if mode == "panoptic":
            return metrics.PanopticQuality(self.categories)
        if mode == "semantic":
            return metrics.SemanticIoU(len(self.categories) + 1)
        return metrics.InstanceAP(self.categories)

    def add(self, request: dict, pred) -> None:
        key, output, mode = shapes.task_key(request), TASKS[request["task"]].output, request.get("mode")
        if key not in self.metrics:
            self.metrics[key] = self._new_metric(output, mode)
            self.order[key] = (REPORT_ORDER.index(output), list(TASKS).index(request["task"]),
                               shapes.GENSEG_MODES.index(mode) if mode else 0)
        shape = pred.image_size
        m = self.metrics[key]
        if output == TEXT:
            m.add(pred.text, request["answer"], shapes.chat_kind(request["text"]))
        elif output == ONE_MASK:
            # the official output, also when "not there" hides it: the metric is the official one
            m.add(union([s.mask for s in pred.official_segments], shape), self.targets_mask(request["targets"], shape))
        elif output == SIMILAR_MASKS:
            m.add([(s.mask, s.score) for s in pred.segments], [self.mask(i) for i in request["targets"]])
        elif output == PHRASE_MASKS:
            gt = [(p["text"], self.targets_mask(p["targets"], shape)) for p in request["phrases"]]
            things = [self._is_thing(p["targets"][0]) for p in request["phrases"]]
            m.add(gt, [(s.label, s.mask) for s in pred.segments], _plain_caption(pred.text), request["caption"], things)
        elif mode == "panoptic":
            m.add(self._pred_segments(pred), [(self.mask(i), self.anns[i]["category_id"]) for i in request["targets"]])
        elif mode == "semantic":
            m.add(self._semantic_map(pred, shape), self._gt_semantic(request["targets"], shape))
        else:
            gt = [(self.mask(i), self.anns[i]["category_id"]) for i in request["targets"]]
            m.add(request["id"], self._pred_segments(pred, with_score=True), gt)

    def _is_thing(self, ann_id: int) -> bool:
        return self.anns[ann_id]["category_id"] in self.thing_ids

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
        keys = sorted(self.metrics, key=self.order.get)
        return {k: self.metrics[k].result() for k in keys}


def _plain_caption(text: str) -> str:
    return text.replace("<p>", "").replace("</p>", " ").replace("<SEG>", "").strip()


def evaluate(predictor: Predictor, root, tasks=None, limit: int | None = None, threshold: float = 0.5,
             progress=None) -> dict[str, dict]:
    coco, requests = shapes.load_dataset(root)
    images = {im["id"]: im for im in coco["images"]}
    chosen, counts = [], {}
    for r in requests:
        key = shapes.task_key(r)
        if (not tasks or r["task"] in tasks or key in tasks) and counts.get(key, 0) < (limit or len(requests)):
            chosen.append(r)
            counts[key] = counts.get(key, 0) + 1
    ev = Evaluator(coco)
    for request in (progress(chosen) if progress else chosen):
        image = Path(root) / images[request["image_id"]]["file_name"]  # as a user uploads it
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
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                    help="auto: bf16 on CUDA and on native-bf16 CPUs for the released model, else float32")
    args = ap.parse_args(argv)
    from tqdm import tqdm

    predictor = Predictor.load(args.model, args.tokenizer, device=args.device, dtype=args.dtype)
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

