"""Generic segmentation (panoptic / semantic / instance) and open-vocabulary segmentation.

Prompt: `ins: a, b; sem: c, d` (both parts → panoptic, `ins:` only → instance, `sem:` only →
semantic). Open-vocabulary requests may also be a plain comma-separated list: every name is then a
thing class, rendered panoptic-style.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..errors import PromptError
from .base import CLASS_MASKS, Task, TextInput
from .common import Choices, DecodeContext, Segment, TaskOutput, class_probs, instance_predictions

TEMPLATES = [
    "Can you segment the image based on the following categories: {categories}? Please output the segmentation masks.",
    "Can you generate segmentation masks for this image based on the specified categories: {categories}? Please generate the segmentation masks.",
    "Can you provide segmentation masks for this image based on these categories: {categories}? Please provide the segmentation masks.",
    "Could you create segmentation masks for this image according to the specified categories: {categories}? Please create the segmentation masks.",
    "Could you output segmentation masks for this image that highlight the following categories: {categories}? Please output the segmentation masks.",
    "Could you provide segmentation masks for this image according to the specified categories: {categories}? Please respond with the segmentation masks.",
]
# Answers of the official training data: what the model learnt to say.
ANSWERS = ["<SEG>.", "It is <SEG>.", "Sure, <SEG>.", "Sure, it is <SEG>.", "Sure, the segmentation result is <SEG>."]
OVERLAP_THRESHOLD = 0.8  # compute_segments: a query's visible area must be > 80 % of its own mask
MASK_THRESHOLD = 0.5


def _names(match) -> list[str]:
    return [n.strip() for n in match.group(1).split(",") if n.strip()] if match else []


def parse_classes(text: str, plain_as_things: bool = False) -> tuple[list[str], list[str]]:
    """`ins: a, b; sem: c` → (things, stuff). A plain list counts as things when allowed."""
    things = _names(re.search(r"ins:\s*([^;\n]+)", text))
    stuff = _names(re.search(r"sem:\s*([^;\n]+)", text))
    if not things and not stuff and plain_as_things and "ins:" not in text and "sem:" not in text:
        things = [n.strip() for n in re.split(r"[,;\n]", text) if n.strip()]
    if not things and not stuff:
        raise PromptError('name at least one class, e.g. "ins: person, dog; sem: sky, grass"')
    return things, stuff


def clean_category(name: str) -> str:
    """The official map function's cleaning of dataset names (`wall-other-merged` → `wall`)."""
    for suffix in ("-merged", "-other", "-stuff"):
        name = name.replace(suffix, "")
    return name.replace("-", " ").lower()


class GenSeg(Task):
    name = "genseg"
    title = "Generic segmentation"
    summary = "panoptic / semantic / instance masks for named classes"
    needs = ("class names as `ins: things; sem: stuff` — both parts give panoptic masks, `ins:` alone "
             "instances, `sem:` alone a semantic map. Pick a preset instead of typing.")
    text = TextInput("Classes (`ins:` things; `sem:` stuff)", "ins: circle, square; sem: wall, floor")
    output = CLASS_MASKS
    class_list = True
    templates, answers = tuple(TEMPLATES), tuple(ANSWERS)

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        things, stuff = parse_classes(text, plain_as_things=self.open_vocabulary)
        classes = choices.shuffle(things + stuff)
        choices.image_draw()
        mode = "panoptic" if things and stuff else ("instance" if things else "semantic")
        if self.open_vocabulary and "ins:" not in text and "sem:" not in text:
            mode = "panoptic"
        cats = ", ".join(f"<p>{clean_category(c)}</p>" for c in classes)
        question = "<image>\n" + choices.template(TEMPLATES).format(categories=cats)
        isthing = [c in things for c in classes]
        return question, {"classes": classes, "isthing": isthing, "mode": mode}

    def labels(self, meta: dict, phrases: list[str], region_names: list[str]) -> list[str]:
        return list(meta["classes"])

    def postprocess(self, ctx: DecodeContext) -> TaskOutput:
        mode = ctx.meta["mode"]
        out = semantic(ctx) if mode == "semantic" else instance(ctx) if mode == "instance" else panoptic(ctx)
        found = {s.category_id for s in out.segments if s.mask.any()}
        missing = [label for k, label in enumerate(ctx.labels) if k not in found]
        if missing:
            out.extra["not_found"] = missing
        return out


class OvSeg(GenSeg):
    name = "ovseg"
    title = "Open-vocabulary segmentation"
    summary = "masks for any list of category names"
    needs = "any category names, comma-separated."
    text = TextInput("Category names, comma-separated", "star, circle, wall")
    open_vocabulary = True


def panoptic(ctx: DecodeContext) -> TaskOutput:
    """Mask2Former panoptic inference with HF-DETR's `compute_segments` (stuff fused per class)."""
    probs = class_probs(ctx.class_logits[0])
    scores, labels = probs.max(-1)
    keep = (scores > ctx.threshold).nonzero().flatten()
    segmentation = np.zeros(tuple(ctx.original), dtype=np.int32)
    info: list[dict] = []  # one entry per accepted query, fused stuff sharing an id (official format)
    if len(keep):
        prob_masks = ctx.to_original(ctx.canvas(0, keep)).sigmoid()
        prob_masks *= scores[keep].view(-1, 1, 1)  # in place, as officially: the ≥ 0.5 test sees it
        owner = prob_masks.argmax(0)
        fused: dict[int, int] = {}
        for k, q in enumerate(keep.tolist()):
            label = int(labels[q])
            mask_k = owner == k
            area, own_area = int(mask_k.sum()), int((prob_masks[k] >= MASK_THRESHOLD).sum())
            if area == 0 or own_area == 0 or not area / own_area > OVERLAP_THRESHOLD:
                continue
            isthing = bool(ctx.meta["isthing"][label])
            seg_id = fused.get(label, len(set(d["id"] for d in info)) + 1)
            segmentation[mask_k.cpu().numpy()] = seg_id
            if not isthing:
                fused[label] = seg_id
            info.append({"id": seg_id, "category_id": label, "isthing": isthing, "score": round(float(scores[q]), 6)})
    first = {d["id"]: d for d in reversed(info)}
    segments = [Segment(segmentation == i, ctx.labels[d["category_id"]], d["score"], d["category_id"], d["isthing"])
                for i, d in sorted(first.items())]
    return TaskOutput(segments, segmentation, {"segments_info": info})


def semantic(ctx: DecodeContext) -> TaskOutput:
    """Per-pixel argmax of Σ_q softmax(class) · sigmoid(mask), no void.

    Classes are resized to full resolution 16 at a time with a running argmax: the same map as
    resizing all at once, in bounded memory for large vocabularies and images. A class's score is
    its mean share of the per-pixel total over its pixels (a value in [0, 1]; the raw sums are not
    probabilities and can exceed 1).
    """
    probs = class_probs(ctx.class_logits[0])  # [Q, C]
    h, w = ctx.scaled
    canvas = ctx.canvas(0)[:, :h, :w].float().sigmoid()
    best = best_val = total = None
    for start in range(0, probs.shape[1], 16):
        sem = ctx.to_original(torch.einsum("qc,qhw->chw", probs[:, start:start + 16], canvas), logits=False)
        val, arg = sem.max(0)
        if best is None:
            best, best_val, total = arg + start, val, sem.sum(0)
        else:
            better = val > best_val
            best, best_val = torch.where(better, arg + start, best), torch.where(better, val, best_val)
            total = total + sem.sum(0)
    label_map = best.cpu().numpy().astype(np.int64)
    share = (best_val / total.clamp_min(1e-12)).cpu().numpy()
    segments = []
    for k in np.unique(label_map):
        mask = label_map == k
        segments.append(Segment(mask, ctx.labels[k], float(share[mask].mean()), int(k), bool(ctx.meta["isthing"][k])))
    return TaskOutput(segments, label_map)


def instance(ctx: DecodeContext) -> TaskOutput:
    preds = instance_predictions(ctx)
    segments = [Segment(m, ctx.labels[c], s, c, True) for m, c, s in preds]
    return TaskOutput(segments, instance_id_map(segments, ctx.original, background=-1))


def instance_id_map(segments: list[Segment], original, background: int) -> np.ndarray:
    """Instances painted in order (later ones on top) into one id map."""
    out = np.full(tuple(original), background, dtype=np.int64)
    for i, seg in enumerate(segments):
        out[seg.mask] = i
    return out


TASKS = [GenSeg(), OvSeg()]  # what this module registers (tasks/__init__.py lists the modules)
