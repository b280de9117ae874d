"""Visual-grounded segmentation: every object like the prompted ones (one or more visual prompts)."""

from __future__ import annotations

import numpy as np

from .base import SIMILAR_MASKS, Task
from .common import Choices, DecodeContext, Segment, TaskOutput, covers_negative, instance_predictions

TEMPLATES = [
    "Can you segment the image based on the following regions: {regions}? Please output the corresponding segmentation mask.",
    "Can you generate segmentation masks for this image based on the specified regions: {regions}? Please generate the segmentation masks.",
    "Can you provide segmentation masks for this image based on these regions: {regions}? Please provide the segmentation masks.",
    "Could you create segmentation masks for this image according to the specified regions: {regions}? Please create the segmentation masks.",
    "Could you output segmentation masks for this image that highlight the following regions: {regions}? Please output the segmentation masks.",
    "Could you provide segmentation masks for this image according to the specified regions: {regions}? Please respond with the segmentation masks.",
]
# Answers of the official training data: what the model learnt to say.
ANSWERS = ["<SEG>.", "It is <SEG>.", "Sure, <SEG>.", "Sure, it is <SEG>.", "Sure, the segmentation result is <SEG>."]


def region_question(num_regions: int, choices: Choices) -> str:
    choices.image_draw()
    regions = ", ".join(["<p><region></p>"] * num_regions)
    return "<image>\n" + choices.template(TEMPLATES).format(regions=regions)


class VgdSeg(Task):
    name = "vgdseg"
    title = "Visual-grounded segmentation"
    summary = "every object like the prompted ones"
    needs = ("one or more visual prompts on example objects: every similar object gets a mask. "
             "Use + New prompt for each kind of object.")
    regions = (1, 64)
    output = SIMILAR_MASKS
    templates, answers = tuple(TEMPLATES), tuple(ANSWERS)

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        self.check_regions(num_regions)
        return region_question(num_regions, choices), {}

    def postprocess(self, ctx: DecodeContext) -> TaskOutput:
        segments = [Segment(m, ctx.labels[c], s, c) for m, c, s in instance_predictions(ctx)
                    if not covers_negative(m, ctx.negative_points)]
        label_map = np.full(tuple(ctx.original), 255, dtype=np.int64)
        for i, seg in enumerate(segments):
            label_map[seg.mask] = i
        return TaskOutput(segments, label_map)


TASKS = [VgdSeg()]  # what this module registers (tasks/__init__.py lists the modules)
