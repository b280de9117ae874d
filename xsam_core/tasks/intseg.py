"""Interactive segmentation: the object under one visual prompt (click, box, scribble or mask)."""

from __future__ import annotations

import numpy as np

from ..masks import mask_box
from .base import ONE_MASK, Task
from .common import (
    Choices,
    DecodeContext,
    Segment,
    TaskOutput,
    box_iou,
    covers_negative,
    query_mask,
    topk_pairs,
)
from .vgdseg import VgdSeg, region_question


class IntSeg(Task):
    name = "intseg"
    title = "Interactive segmentation"
    summary = "the object under one visual prompt"
    needs = ("one visual prompt on the image: click the object (+ Point), click two corners of a box, "
             "draw a scribble or upload a mask. − Negative points reject masks that cover them. "
             "Uses the active prompt.")
    regions = (1, 1)
    output = ONE_MASK
    templates, answers = VgdSeg.templates, VgdSeg.answers  # the visual-grounded ones

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        self.check_regions(num_regions)
        return region_question(1, choices), {}

    def postprocess(self, ctx: DecodeContext) -> TaskOutput:
        """Among candidates scoring ≥ threshold (or the best one), the mask whose box best overlaps the
        prompt's; candidates in top-k order, so ties resolve as officially. Masks covering a negative
        point are skipped. Masks are made one at a time: only scores and boxes are kept. The choice is made on
        masks as officially upsampled; only the chosen one is snapped to the image (`edges.py`, if the model does)."""
        prompt_box = mask_box(ctx.prompt_masks[0])
        pairs = topk_pairs(ctx)
        candidates = []  # (top-k rank, score, query, box)
        best = -1.0
        # A score is the class probability times a mask factor ≤ 1, so a candidate whose probability is
        # under both the threshold and the best score so far can be neither kept nor the best: taking
        # them by falling probability, the first such one ends the search (most queries never get a
        # full-size mask; NaN probabilities come last and rank last, as before).
        falling = sorted(range(len(pairs)), key=lambda i: -pairs[i][2] if pairs[i][2] == pairs[i][2] else 2.0)
        for rank in falling:
            query, _, prob = pairs[rank]
            if prob < ctx.threshold and prob < best:
                break
            mask, mask_score = query_mask(ctx, query, snap=False)  # only the chosen mask is snapped
            if covers_negative(mask, ctx.negative_points):
                continue
            score = prob * mask_score
            score = score if score == score else -1.0
            best = max(best, score)  # after the loop: the best candidate's score
            candidates.append((rank, score, query, mask_box(mask)))
        candidates = [c[1:] for c in sorted(candidates)]  # back in top-k order: ties resolve as officially
        if not candidates:
            return TaskOutput()
        kept = [c for c in candidates if c[0] >= ctx.threshold or c[0] == best]
        score, query, _ = max(kept, key=lambda c: box_iou(c[2], prompt_box))
        mask, _ = query_mask(ctx, query)
        label_map = np.where(mask, 1.0, 255.0).astype(np.float32)
        return TaskOutput([Segment(mask, ctx.labels[0], score, 0)], label_map)


TASKS = [IntSeg()]  # what this module registers (tasks/__init__.py lists the modules)
