"""Every failure reaches the user as a short message (a Gradio error toast), never a stack trace."""

from __future__ import annotations

import functools
import logging

import gradio as gr

from xsam_core.inference.processing import ImageError
from xsam_core.inference.visual_prompts import VisualPromptError
from xsam_core.modeling.checkpoint import CheckpointError
from xsam_core.tasks import PromptError

log = logging.getLogger("xsam.app")

USER_ERRORS = (ImageError, PromptError, VisualPromptError, CheckpointError)
TITLES = {ImageError: "Image problem", PromptError: "Prompt problem", VisualPromptError: "Visual prompt problem",
          CheckpointError: "Model problem"}


def user_message(error: Exception) -> gr.Error:
    for kind, title in TITLES.items():
        if isinstance(error, kind):
            return gr.Error(_sentence(str(error)), title=title, print_exception=False)
    if _is_oom(error):
        return gr.Error("The model ran out of memory on this image: try a smaller image.", title="Out of memory",
                        print_exception=False)
    log.exception("unexpected error in a request")
    return gr.Error(f"Something went wrong ({type(error).__name__}: {_sentence(str(error))}). "
                    "The details are in the server log.", title="Internal error", print_exception=False)


def friendly(fn):
    """Decorator: expected errors → their message; anything else → logged, a short message shown."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            raise user_message(e) from None

    return wrapper


def _is_oom(error: Exception) -> bool:
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()


def _sentence(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else "no details"
    return text[:1].upper() + text[1:]
