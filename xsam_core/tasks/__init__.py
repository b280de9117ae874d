"""The tasks: one module each (prompt building, post-processing, what it takes and shows), one registry.

Each task module ends with `TASKS = [...]`, its instances. Adding a task is its module plus its name
in `MODULES`, which also sets the order in which the page, the API and the CLI list the tasks.
"""

from __future__ import annotations

from importlib import import_module

from ..errors import PromptError
from .base import Task, check_request

MODULES = ("chat", "genseg", "refseg", "reaseg", "gcgseg", "intseg", "vgdseg")

TASKS: dict[str, Task] = {t.name: t for m in MODULES for t in import_module(f".{m}", __name__).TASKS}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise PromptError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None


__all__ = ["TASKS", "Task", "get_task", "check_request", "PromptError"]
