"""Visual-grounded segmentation: every object like the prompted ones (one or more visual prompts)."""

from __future__ import annotations

import numpy as np

from .common import Choices, DecodeContext, Segment, TaskOutput, covers_negative, instance_predictions
from .genseg import PromptError

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


class VgdSeg:
    name = "vgdseg"
    conditions_from_output = False
    refer = False

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        if num_regions < 1:
            raise PromptError("draw at least one visual prompt (click, box, scribble or mask) on an example object")
        return region_question(num_regions, choices), {}

    def postprocess(self, ctx: DecodeContext) -> TaskOutput:
        segments = [Segment(m, ctx.labels[c], s, c) for m, c, s in instance_predictions(ctx)
                    if not covers_negative(m, ctx.negative_points)]
        label_map = np.full(tuple(ctx.original), 255, dtype=np.int64)
        for i, seg in enumerate(segments):
            label_map[seg.mask] = i
        return TaskOutput(segments, label_map)
