"""One module per task: its prompt building and its post-processing side by side."""

from __future__ import annotations

from . import gcgseg, genseg, reaseg, refseg, vgdseg
from .chat import Chat
from .gcgseg import GcgSeg
from .genseg import GenSeg, OvSeg, PromptError
from .intseg import IntSeg
from .reaseg import ReaSeg
from .refseg import RefSeg
from .vgdseg import VgdSeg

TASKS = {t.name: t for t in (Chat(), GenSeg(), OvSeg(), RefSeg(), ReaSeg(), GcgSeg(), IntSeg(), VgdSeg())}

# One line each for users (CLI help, the app's task selector).
DESCRIPTIONS = {
    "chat": "Image chat — answer questions about the image",
    "genseg": "Generic segmentation — panoptic / semantic / instance masks for named classes",
    "ovseg": "Open-vocabulary segmentation — masks for any list of category names",
    "refseg": "Referring segmentation — the object a phrase describes",
    "reaseg": "Reasoning segmentation — the object that answers a question",
    "gcgseg": "Grounded caption — a caption whose phrases are segmented",
    "intseg": "Interactive segmentation — the object under one visual prompt",
    "vgdseg": "Visual-grounded segmentation — every object like the prompted ones",
}


# Question templates and the official training answers, per task (intseg shares vgdseg's).
TEMPLATES = {"genseg": genseg.TEMPLATES, "refseg": refseg.TEMPLATES, "reaseg": reaseg.TEMPLATES,
             "gcgseg": gcgseg.TEMPLATES, "vgdseg": vgdseg.TEMPLATES}
ANSWERS = {"genseg": genseg.ANSWERS, "refseg": refseg.ANSWERS, "gcgseg": gcgseg.ANSWER_ENDINGS,
           "vgdseg": vgdseg.ANSWERS}


def get_task(name: str):
    try:
        return TASKS[name]
    except KeyError:
        raise PromptError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None


__all__ = ["TASKS", "DESCRIPTIONS", "TEMPLATES", "ANSWERS", "get_task", "PromptError"]
