"""Standard segmentation metrics on plain numpy inputs, independent of any model.

Masks are boolean arrays of shape (H, W); category ids are ints. Every metric is an
accumulator: call ``add(...)`` once per sample, then ``result()`` for a dict of floats
(plus nested per-class dicts where noted). A metric that is undefined (no samples, no
category of that kind, no ground truth for AP) is reported as ``nan``.

One module (about 440 lines) on purpose: it is a catalogue of independent accumulators under one
contract, in sections (binary masks, panoptic, semantic, instance AP, VGD, GCG, chat, reporting),
most of its length their definitions' documentation; they share ``iou``, ``_mean`` and NaN
conventions (GCG's phrase score is a mask IoU, VGD's AP is InstanceAP), and every caller reads
them as ``metrics.X``. Splitting would scatter one reference page over several files.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import string
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from ..masks import mask_to_rle, union

NAN = float("nan")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; two empty masks count as a perfect match (1.0)."""
    a, b = _as_mask(a), _as_mask(b)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _as_mask(m) -> np.ndarray:
    return np.asarray(m, dtype=bool)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else NAN


# --------------------------------------------------------------------------- binary masks


class MaskIoU:
    """Binary-mask IoU (referring / reasoning / interactive segmentation).

    ``miou``: mean of per-sample IoUs (empty pred vs empty GT = 1.0, empty pred vs
    non-empty GT = 0.0). ``ciou``: cumulative intersection / cumulative union over all
    samples (1.0 if every union was empty).
    """

    def __init__(self):
        self._ious: list[float] = []
        self._inter = 0
        self._union = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred, gt = _as_mask(pred), _as_mask(gt)
        self._ious.append(iou(pred, gt))
        self._inter += int(np.logical_and(pred, gt).sum())
        self._union += int(np.logical_or(pred, gt).sum())

    def result(self) -> dict:
        if not self._ious:
            ciou = NAN
        else:
            ciou = 1.0 if self._union == 0 else self._inter / self._union
        return {"miou": _mean(self._ious), "ciou": float(ciou), "n": len(self._ious)}


# --------------------------------------------------------------------------- panoptic

_VOID = 0


@dataclass
class _PQStat:
    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


class PanopticQuality:
    """Panoptic quality (Kirillov et al.), following COCO panopticapi's ``pq_compute``.

    ``categories``: list of ``{"id": int, "isthing": bool|0|1}``.
    ``add(pred_segments, gt_segments)``: each a list of ``(mask, category_id)``; segments
    of one side must not overlap. Pixels covered by no GT segment are void; pixels
    covered by no predicted segment are unassigned. Empty segments are dropped.

    A pred and a GT segment of the same category match when
    IoU = inter / (union - pred∩void) > 0.5 (which makes matching unique). Unmatched GT
    segments are FN; unmatched predictions are FP unless more than half of their area
    lies on void. Per category: SQ = sum IoU / TP, RQ = TP / (TP + FP/2 + FN/2),
    PQ = SQ·RQ. ``pq/sq/rq`` average over categories with TP+FP+FN > 0; ``pq_things`` /
    ``pq_stuff`` restrict that average to thing / stuff categories. ``per_category``
    maps each such category id to its pq, sq, rq, tp, fp, fn.
    """

    def __init__(self, categories: list[dict]):
        self.isthing = {int(c["id"]): bool(c["isthing"]) for c in categories}
        self._stats: dict[int, _PQStat] = {c: _PQStat() for c in self.isthing}

    def _id_map(self, segments: list, shape: tuple[int, int]):
        """Id map (0 = no segment, i = i-th kept segment), category per id, area per id."""
        ids = np.zeros(shape, dtype=np.int64)
        cats = [None]
        for mask, cat in segments:
            mask = _as_mask(mask)
            if int(cat) not in self.isthing:
                raise KeyError(f"unknown category_id {cat}")
            if not mask.any():
                continue
            if ids[mask].any():
                raise ValueError("panoptic segments must not overlap")
            cats.append(int(cat))
            ids[mask] = len(cats) - 1
        return ids, cats, np.bincount(ids.ravel(), minlength=len(cats))

    def add(self, pred_segments: list, gt_segments: list) -> None:
        masks = [m for m, _ in [*pred_segments, *gt_segments]]
        if not masks:
            return
        shape = _as_mask(masks[0]).shape
        gt_ids, gt_cats, gt_area = self._id_map(gt_segments, shape)
        pred_ids, pred_cats, pred_area = self._id_map(pred_segments, shape)

        offset = len(pred_cats)
        pairs, counts = np.unique(gt_ids * offset + pred_ids, return_counts=True)
        overlap = {(int(p // offset), int(p % offset)): int(c) for p, c in zip(pairs, counts)}

        gt_matched, pred_matched = set(), set()
        for (g, p), inter in overlap.items():
            if g == _VOID or p == _VOID or gt_cats[g] != pred_cats[p]:
                continue
            union = pred_area[p] + gt_area[g] - inter - overlap.get((_VOID, p), 0)
            match_iou = inter / union
            if match_iou > 0.5:
                stat = self._stats[gt_cats[g]]
                stat.tp += 1
                stat.iou += float(match_iou)
                gt_matched.add(g)
                pred_matched.add(p)

        for g in range(1, len(gt_cats)):
            if g not in gt_matched:
                self._stats[gt_cats[g]].fn += 1
        for p in range(1, len(pred_cats)):
            if p not in pred_matched and overlap.get((_VOID, p), 0) / pred_area[p] <= 0.5:
                self._stats[pred_cats[p]].fp += 1

    def result(self) -> dict:
        per_category = {}
        for cat, s in self._stats.items():
            if s.tp + s.fp + s.fn == 0:
                continue
            rq = s.tp / (s.tp + 0.5 * s.fp + 0.5 * s.fn)
            sq = s.iou / s.tp if s.tp else 0.0
            per_category[cat] = {"pq": sq * rq, "sq": sq, "rq": rq,
                                 "tp": s.tp, "fp": s.fp, "fn": s.fn}

        def average(key, isthing=None):
            return _mean([r[key] for c, r in per_category.items()
                          if isthing is None or self.isthing[c] == isthing])

        return {
            "pq": average("pq"), "sq": average("sq"), "rq": average("rq"),
            "pq_things": average("pq", True), "pq_stuff": average("pq", False),
            "n": len(per_category), "per_category": per_category,
        }


# --------------------------------------------------------------------------- semantic


class SemanticIoU:
    """Semantic segmentation IoU from an accumulated confusion matrix.

    ``add(pred, gt)``: integer label maps of equal shape; GT pixels equal to
    ``ignore_index`` are skipped. ``miou`` averages per-class IoU over classes present in
    GT or prediction; ``per_class`` maps those class ids to their IoU; ``pixel_acc`` is
    correct / non-ignored pixels.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._conf = np.zeros((num_classes, num_classes), dtype=np.int64)  # [gt, pred]

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred, gt = np.asarray(pred, dtype=np.int64), np.asarray(gt, dtype=np.int64)
        if pred.shape != gt.shape:
            raise ValueError(f"shapes differ: {pred.shape} vs {gt.shape}")
        keep = gt != self.ignore_index
        pred, gt = pred[keep], gt[keep]
        n = self.num_classes
        if ((pred < 0) | (pred >= n) | (gt < 0) | (gt >= n)).any():
            raise ValueError(f"labels must lie in [0, {n}) or equal ignore_index in GT")
        self._conf += np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)

    def result(self) -> dict:
        tp = np.diag(self._conf)
        union = self._conf.sum(0) + self._conf.sum(1) - tp
        present = np.flatnonzero(union)
        per_class = {int(c): float(tp[c] / union[c]) for c in present}
        total = self._conf.sum()
        return {
            "miou": _mean(list(per_class.values())),
            "pixel_acc": float(tp.sum() / total) if total else NAN,
            "per_class": per_class,
        }


# --------------------------------------------------------------------------- instance AP


class InstanceAP:
    """COCO mask AP via pycocotools ``COCOeval`` (iouType "segm"), built in memory.

    ``categories``: list of ``{"id": int}`` (a ``"name"`` is optional).
    ``add(image_id, pred_instances, gt_instances)``: pred = list of
    ``(mask, category_id, score)``, gt = list of ``(mask, category_id)``; each image id
    once. ``ap`` = AP@[.5:.95], ``ap50``, ``ap75`` (COCO's 101-point interpolation, area
    "all", 100 detections). No ground truth at all gives nan; ground truth but no
    predictions gives 0.
    """

    def __init__(self, categories: list[dict]):
        self.categories = [{"id": int(c["id"]), "name": str(c.get("name", c["id"]))}
                           for c in categories]
        self._cat_ids = {c["id"] for c in self.categories}
        self._image_ids: set = set()
        self._images: list[dict] = []
        self._gts: list[dict] = []
        self._dets: list[dict] = []

    def add(self, image_id: int, pred_instances: list, gt_instances: list) -> None:
        if image_id in self._image_ids:
            raise ValueError(f"image_id {image_id} added twice")
        self._image_ids.add(image_id)
        masks = [m for m, *_ in [*pred_instances, *gt_instances]]
        height, width = _as_mask(masks[0]).shape if masks else (0, 0)
        self._images.append({"id": image_id, "height": height, "width": width})
        for mask, cat in gt_instances:
            rle = mask_to_rle(mask)
            self._gts.append({
                "id": len(self._gts) + 1, "image_id": image_id,
                "category_id": self._check_cat(cat), "segmentation": rle,
                "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist(),
                "iscrowd": 0,
            })
        for mask, cat, score in pred_instances:
            self._dets.append({"image_id": image_id, "category_id": self._check_cat(cat),
                               "segmentation": mask_to_rle(mask), "score": float(score)})

    def _check_cat(self, cat) -> int:
        if int(cat) not in self._cat_ids:
            raise KeyError(f"unknown category_id {cat}")
        return int(cat)

    def result(self) -> dict:
        if not self._gts:
            return {"ap": NAN, "ap50": NAN, "ap75": NAN}
        if not self._dets:  # COCO.loadRes cannot take an empty list
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {"images": self._images,
                          "annotations": self._gts, "categories": self.categories}
            gt.createIndex()
            dt = gt.loadRes([dict(d) for d in self._dets])  # loadRes edits its input
            ev = COCOeval(gt, dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        ap, ap50, ap75 = (float(s) if s >= 0 else NAN for s in ev.stats[:3])
        return {"ap": ap, "ap50": ap50, "ap75": ap75}


# --------------------------------------------------------------------------- VGD


class VGDMetrics:
    """Visual-grounded detection: find every object "like the prompt" (a single class).

    ``add(pred, gt)``: pred = list of ``(mask, score)``, gt = list of masks.
    ``miou``: mean over samples of IoU(union of pred masks, union of GT masks) (both
    empty = 1.0). ``ap50``: COCO mask AP at IoU 0.5, one category, each sample one image.
    """

    def __init__(self):
        self._ious: list[float] = []
        self._ap = InstanceAP([{"id": 1}])

    def add(self, pred: list, gt: list) -> None:
        masks = [m for m, _ in pred] + list(gt)
        shape = _as_mask(masks[0]).shape if masks else (0, 0)
        self._ious.append(iou(union([m for m, _ in pred], shape), union(gt, shape)))
        self._ap.add(len(self._ious), [(m, 1, s) for m, s in pred], [(m, 1) for m in gt])

    def result(self) -> dict:
        return {"miou": _mean(self._ious), "ap50": self._ap.result()["ap50"],
                "n": len(self._ious)}


# --------------------------------------------------------------------------- GCG

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_phrase(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


class GCGMetrics:
    """Grounded conversation generation (caption with segmented phrases).

    ``add(gt_phrases, pred_phrases, pred_caption, gt_caption)``: phrases are lists of
    ``(text, mask)``. Texts compare after ``normalize_phrase``.

    Matching is one-to-one (Hungarian): it first maximises the number of GT/pred pairs
    with equal text, then the total mask IoU; so a GT phrase takes the same-text
    prediction when there is one, else the unmatched prediction with the best IoU.
    ``phrase_miou``: mean over all GT phrases of IoU with the matched mask (0 when
    unmatched). ``recall``: fraction of GT phrases whose match has IoU >= 0.5 and equal
    text (as in GLaMM). ``caption_recall``: fraction of GT phrase texts that occur (as
    whole words) in the predicted caption. ``caption_f1``: mean bag-of-words F1 between
    predicted and GT caption (SQuAD-style). When ``add`` is told which GT phrases name things
    (``is_thing``), ``object_miou`` and ``object_recall`` are the same over those phrases alone: a
    caption that gets the wall and floor right but misnames the shapes scores low there.
    """

    def __init__(self):
        self._ious: list[float] = []
        self._hits: list[bool] = []
        self._in_caption: list[bool] = []
        self._f1: list[float] = []
        self._is_thing: list[bool] = []

    def add(self, gt_phrases: list, pred_phrases: list, pred_caption: str,
            gt_caption: str, is_thing: list[bool] | None = None) -> None:
        gt_texts = [normalize_phrase(t) for t, _ in gt_phrases]
        pred_texts = [normalize_phrase(t) for t, _ in pred_phrases]
        ious = np.array([[iou(g, p) for _, p in pred_phrases] for _, g in gt_phrases])
        same = np.array([[g == p for p in pred_texts] for g in gt_texts], dtype=bool)

        matched = np.zeros(len(gt_phrases))
        hits = np.zeros(len(gt_phrases), dtype=bool)
        if gt_phrases and pred_phrases:
            # Text bonus exceeds any achievable IoU total, so text matches come first.
            rows, cols = linear_sum_assignment(same * (len(gt_phrases) + 1) + ious,
                                               maximize=True)
            matched[rows] = ious[rows, cols]
            hits[rows] = same[rows, cols] & (ious[rows, cols] >= 0.5)
        self._ious.extend(matched.tolist())
        self._hits.extend(hits.tolist())
        self._is_thing.extend(is_thing if is_thing is not None else [False] * len(gt_phrases))

        caption = f" {normalize_phrase(pred_caption)} "
        self._in_caption.extend(f" {t} " in caption for t in gt_texts)
        self._f1.append(_token_f1(normalize_phrase(pred_caption), normalize_phrase(gt_caption)))

    def result(self) -> dict:
        out = {"phrase_miou": _mean(self._ious), "recall": _mean(self._hits),
               "caption_recall": _mean(self._in_caption), "caption_f1": _mean(self._f1),
               "n": len(self._f1), "n_phrases": len(self._ious)}
        things = np.array(self._is_thing, bool)
        if things.any():
            out["object_miou"] = _mean(np.array(self._ious)[things].tolist())
            out["object_recall"] = _mean(np.array(self._hits)[things].tolist())
        return out


def _token_f1(pred: str, gt: str) -> float:
    p, g = pred.split(), gt.split()
    if not p or not g:
        return float(p == g)
    common = sum(min(p.count(w), g.count(w)) for w in set(p))
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- chat


def normalize_answer(text: str) -> str:
    """Lower-case, strip surrounding whitespace and trailing punctuation, collapse spaces."""
    return " ".join(text.lower().split()).rstrip(string.punctuation).rstrip()


class ExactMatch:
    """Exact-match accuracy of answers after ``normalize_answer``; with a ``kind`` per question (e.g.
    count, colour), also ``accuracy_<kind>`` and its number of questions ``n_<kind>`` for each kind."""

    def __init__(self):
        self._hits: list[bool] = []
        self._kinds: list[str | None] = []

    def add(self, pred: str, gt: str, kind: str | None = None) -> None:
        self._hits.append(normalize_answer(pred) == normalize_answer(gt))
        self._kinds.append(kind)

    def result(self) -> dict:
        out = {"accuracy": _mean(self._hits), "n": len(self._hits)}
        for kind in sorted({k for k in self._kinds if k}):
            hits = [h for h, k in zip(self._hits, self._kinds) if k == kind]
            out[f"accuracy_{kind}"], out[f"n_{kind}"] = _mean(hits), len(hits)
        return out


# --------------------------------------------------------------------------- reporting


def format_table(results: dict[str, dict]) -> str:
    """Plain-text table: one row per task, one column per scalar metric ("-" if absent).

    Floats print with 4 decimals; non-scalar entries (e.g. ``per_category``) are skipped.
    """
    columns: list[str] = []
    for metrics in results.values():
        for key, value in metrics.items():
            if _is_scalar(value) and key not in columns:
                columns.append(key)
    header = ["task", *columns]
    rows = [[task, *(_fmt(metrics.get(k)) for k in columns)] for task, metrics in results.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join([cells[0].ljust(widths[0])]
                         + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return "nan" if math.isnan(value) else f"{value:.4f}"
