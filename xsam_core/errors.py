"""The user-facing errors of the core: each says what is wrong with the request and how to fix it.

Every entry point (app, API, CLI) shows their message as is; anything else is an internal error.
"""


class ImageError(ValueError):
    """The image cannot be used: unreadable, empty, too large."""


class PromptError(ValueError):
    """A problem with the task, its text or its class list."""


class VisualPromptError(ValueError):
    """A problem with the visual prompts (points, boxes, scribbles, masks)."""


class CheckpointError(RuntimeError):
    """Weights, config or tokenizer cannot be loaded or do not fit together."""


USER_ERRORS = (ImageError, PromptError, VisualPromptError, CheckpointError)
