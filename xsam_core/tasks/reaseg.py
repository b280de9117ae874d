"""Reasoning segmentation: a question whose answer is an object ("what can be used to warm clothes?")."""

from __future__ import annotations

from .base import TextInput
from .refseg import RefSeg

TEMPLATES = [
    "{sent} Please output the corresponding segmentation mask.",
    "{sent} Please generate a segmentation mask for this image.",
    "{sent} Please extract the segmentation mask.",
    "{sent} Please return the segmentation predictions as masks.",
    "{sent} Please segment the image.",
]


class ReaSeg(RefSeg):
    """A question whose answer is an object, kept as typed, in the long reasoning templates."""

    name = "reaseg"
    title = "Reasoning segmentation"
    summary = "the object that answers a question"
    needs = "a question whose answer is an object."
    text = TextInput("Question whose answer is an object", "the shape with three corners")
    templates, slot = tuple(TEMPLATES), "sent"
    hint = "ask a question whose answer is an object, e.g. “what can hold water?”"

    def phrase(self, text: str) -> str:
        return text.strip()


TASKS = [ReaSeg()]  # what this module registers (tasks/__init__.py lists the modules)
