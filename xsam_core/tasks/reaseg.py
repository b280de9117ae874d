"""Reasoning segmentation: a question whose answer is an object ("what can be used to warm clothes?")."""

from __future__ import annotations

from .common import Choices, DecodeContext, TaskOutput
from .genseg import PromptError
from .refseg import best_query_masks

TEMPLATES = [
    "{sent} Please output the corresponding segmentation mask.",
    "{sent} Please generate a segmentation mask for this image.",
    "{sent} Please extract the segmentation mask.",
    "{sent} Please return the segmentation predictions as masks.",
    "{sent} Please segment the image.",
]


class ReaSeg:
    name = "reaseg"
    conditions_from_output = False
    refer = True

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        sentence = text.strip()
        if not sentence:
            raise PromptError("ask a question whose answer is an object, e.g. “what can hold water?”")
        choices.image_draw()
        question = choices.template(TEMPLATES).format(sent=f"<p>{sentence}</p>")
        return "<image>\n" + question, {"phrase": sentence}

    def postprocess(self, ctx: DecodeContext) -> TaskOutput:
        return best_query_masks(ctx, paint=False)
