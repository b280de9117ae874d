"""Image chat: a free-form question about the image, answered in text."""

from __future__ import annotations

from .common import Choices
from .genseg import PromptError


class Chat:
    name = "chat"
    conditions_from_output = False
    refer = False

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        question = text.replace("<image>", "").strip()
        if not question:
            raise PromptError("type a question about the image")
        choices.image_draw()
        return "<image>\n" + question, {}

    postprocess = None  # text only
