"""Referring segmentation: one mask for a referring expression ("the red box on the left")."""

from __future__ import annotations

import numpy as np

from ..errors import PromptError
from .base import ONE_MASK, Task, TextInput
from .common import Choices, DecodeContext, Segment, TaskOutput, class_probs

TEMPLATES = [
    "Please identify and segment the {phrase} in this image.",
    "Please segment {phrase} in this image.",
    "What is {phrase} in this image? Please output the corresponding segmentation mask.",
    "Can you segment {phrase} in this image? Please generate the segmentation mask.",
    "Could you provide a segmentation mask for the {phrase} in this image? Please provide the segmentation mask.",
    "Where is the {phrase} in this picture? Please output the segmentation masks.",
    "Can you highlight the {phrase} in this image with a segmentation mask? Please output the segmentation mask.",
    "Could you provide a segmentation mask for the {phrase} in this image? Please respond with the segmentation mask.",
    "Where is the {phrase} in this picture? Please output the corresponding segmentation mask.",
    "Can you highlight the {phrase} in this image with a segmentation mask? Please output the segmentation mask.",
]
ANSWERS = ["<SEG>.", "It is <SEG>.", "Sure, <SEG>.", "Sure, it is <SEG>.", "Sure, the segmentation mask is <SEG>."]
MASK_THRESHOLD = 0.5  # the official refseg post-processing ignores the score threshold


class RefSeg(Task):
    """One referring phrase wrapped in <p>…</p> inside a question template; the best query's mask."""

    name = "refseg"
    title = "Referring segmentation"
    summary = "the object a phrase describes"
    needs = "a phrase that names one object."
    text = TextInput("Referring expression", "the red circle")
    output = ONE_MASK
    refer = True
    answers = tuple(ANSWERS)
    templates, slot = tuple(TEMPLATES), "phrase"
    hint = "type a referring expression, e.g. “the red box on the left”"

    def phrase(self, text: str) -> str:
        return text.strip().lower()  # the official map function lower-cases referring phrases

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        phrase = self.phrase(text)
        if not phrase:
            raise PromptError(self.hint)
        choices.image_draw()
        question = choices.template(self.templates).format(**{self.slot: f"<p>{phrase}</p>"})
        return "<image>\n" + question, {"phrase": phrase}

    def postprocess(self, ctx: DecodeContext) -> TaskOutput:
        """The official best-query masks; one scoring under the threshold is a "not there" (X-SAM issue 8:
        grounding cannot reject absent objects): kept as the official output, flagged, not shown."""
        out = best_query_masks(ctx, paint=False)
        out.rejected = [s for s in out.segments if s.score < ctx.threshold]
        if out.rejected:
            out.segments = [s for s in out.segments if s.score >= ctx.threshold]
            best = max(s.score for s in out.rejected)
            out.extra["no_match"] = f"no match above {ctx.threshold:.2f} (best {best:.2f})"
        return out


def best_query_masks(ctx: DecodeContext, paint: bool) -> TaskOutput:
    """Per phrase j: the query with the highest probability of class j, its mask at sigmoid > 0.5.

    refseg/reaseg (`paint=False`): one decoder pass per phrase, map 1 = mask / 255 = rest.
    gcgseg (`paint=True`): one pass for all phrases, phrase j painted as j+1, later phrases on top.
    """
    label_map = np.full(tuple(ctx.original), 255, dtype=np.int64)
    segments, info = [], []
    for j, label in enumerate(ctx.labels):
        b = 0 if paint else j
        probs = class_probs(ctx.class_logits[b])[:, j]
        q = int(probs.argmax())
        logits = ctx.to_original(ctx.canvas(b, [q]))[0]
        mask = (logits.sigmoid() > MASK_THRESHOLD).cpu().numpy()
        score = round(float(probs[q]), 6)
        label_map[mask] = j + 1 if paint else 1
        segments.append(Segment(mask, label, score, j))
        info.append({"id": j + 1 if paint else 0, "category_id": j, "score": score})
    extra = {"segments_info": info}
    if paint:  # later phrases overwrite earlier ones on the map; keep the segments consistent with it
        hidden = {}  # phrase j whose whole mask lies under later phrases -> those phrases
        for j, seg in enumerate(segments):
            painted = label_map == j + 1
            if seg.mask.any() and not painted.any():
                hidden[j] = [k for k in range(j + 1, len(segments)) if (segments[k].mask & seg.mask).any()]
            seg.mask = painted
        if hidden:
            extra["hidden_under"] = hidden
    return TaskOutput(segments, label_map, extra)


TASKS = [RefSeg()]  # what this module registers (tasks/__init__.py lists the modules)
