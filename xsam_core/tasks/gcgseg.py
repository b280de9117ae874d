"""Grounded caption generation: a caption whose <p>phrases</p> each get a mask."""

from __future__ import annotations

from .base import PHRASE_MASKS, Task
from .common import Choices, DecodeContext, TaskOutput
from .refseg import best_query_masks

TEMPLATES = [
    "Could you please give me a brief description of the image? Please respond with interleaved segmentation masks for the corresponding parts of the answer.",
    "Can you provide a brief description of the this image? Please output interleaved segmentation masks for the corresponding phrases.",
    "Please briefly describe the contents of the image. Please respond with interleaved segmentation masks for the corresponding parts of the answer.",
    "Could you give a brief explanation of what can be found within this picture? Please output interleaved segmentation masks for the corresponding phrases.",
    "Could you give me an brief explanation of this picture? Please respond with interleaved segmentation masks for the corresponding phrases.",
    "Could you provide me with a briefly analysis of this photo? Please output interleaved segmentation masks for the corresponding parts of the answer.",
]
# The caption is followed by one of these (official training data).
ANSWER_ENDINGS = ["<SEG>.", "And <SEG>.", "The segmentation mask is <SEG>.", "And the segmentation mask is <SEG>."]


class GcgSeg(Task):
    name = "gcgseg"
    title = "Grounded caption"
    summary = "a caption whose phrases are segmented"
    needs = "only the image. Click a coloured phrase of the caption to highlight its mask."
    output = PHRASE_MASKS
    grounded_answer = True  # the phrases come from the generated caption
    templates = tuple(TEMPLATES)
    answers = tuple(ANSWER_ENDINGS)  # after the caption

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        choices.image_draw()
        return "<image>\n" + choices.template(self.templates), {}

    def postprocess(self, ctx: DecodeContext) -> TaskOutput:
        return best_query_masks(ctx, paint=True)


TASKS = [GcgSeg()]  # what this module registers (tasks/__init__.py lists the modules)
