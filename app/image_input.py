"""Image inputs whose decoding failures (a non-image, a corrupt file, a decompression bomb) become a
readable message instead of an internal error: Gradio opens uploads with PIL before any handler runs.

The instance's `preprocess` is wrapped rather than subclassing `gr.Image`: Gradio writes a `.pyi` stub
next to the module of every component subclass."""

from __future__ import annotations

import functools

import gradio as gr
from PIL import Image, UnidentifiedImageError

DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)


def image_input(**kwargs) -> gr.Image:
    component = gr.Image(**kwargs)
    preprocess = component.preprocess

    @functools.wraps(preprocess)
    def readable(payload):
        try:
            return preprocess(payload)
        except DECODE_ERRORS as e:
            reason = "too large" if isinstance(e, Image.DecompressionBombError) else "not a readable image"
            raise gr.Error(f"The uploaded file is {reason}. Use a PNG, JPEG or WebP image.",
                           title="Image problem", print_exception=False) from None

    component.preprocess = readable
    return component
