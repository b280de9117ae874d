"""The tasks: one module each (prompt building, post-processing, what it takes and shows), one registry.

Adding a task: write its module (a `Task` subclass, see `base.py`) and add one instance below.
"""

from __future__ import annotations

from ..errors import PromptError
from .base import Task, check_request
from .chat import Chat
from .gcgseg import GcgSeg
from .genseg import GenSeg, OvSeg
from .intseg import IntSeg
from .reaseg import ReaSeg
from .refseg import RefSeg
from .vgdseg import VgdSeg

TASKS: dict[str, Task] = {t.name: t for t in (
    Chat(), GenSeg(), OvSeg(), RefSeg(), ReaSeg(), GcgSeg(), IntSeg(), VgdSeg(),
)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise PromptError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None


__all__ = ["TASKS", "Task", "get_task", "check_request", "PromptError"]
