"""Image chat: a free-form question about the image, answered in text."""

from __future__ import annotations

from ..errors import PromptError
from .base import TEXT, Task, TextInput
from .common import Choices


class Chat(Task):
    name = "chat"
    title = "Image chat"
    summary = "answer questions about the image"
    needs = "an image and a question."
    text = TextInput("Question", "What colour is the triangle?")
    output = TEXT

    def prompt(self, text: str, num_regions: int, choices: Choices) -> tuple[str, dict]:
        question = text.replace("<image>", "").strip()
        if not question:
            raise PromptError("type a question about the image")
        choices.image_draw()
        return "<image>\n" + question, {}


TASKS = [Chat()]  # what this module registers (tasks/__init__.py lists the modules)
