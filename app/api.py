"""The public API: one named endpoint per task, each (image, text, prompts JSON, threshold) →
(overlay image, answer text, result JSON with COCO RLE masks).

The endpoints hang off hidden components so that Gradio types them (image upload in, image file out);
the page's own events are private.
"""

from __future__ import annotations

import gradio as gr

from xsam_core.inference.processing import load_image
from xsam_core.inference.render import overlay
from xsam_core.tasks import TASKS

from . import files
from .errors import friendly
from .image_input import image_input
from .service import Service

CONCURRENCY_ID = "xsam-model"  # every event that runs the model shares one limit


def endpoint(service: Service, task: str):
    @friendly
    def predict(image: str | None, text: str, prompts: str, threshold: float):
        pred, _ = service.predict(image, task, text, prompts, threshold)
        path = files.request_dir() / f"xsam-{task}-overlay.png"
        overlay(load_image(image), pred).save(path)
        return str(path), pred.text, pred.to_json()

    predict.__name__ = task
    predict.__doc__ = TASKS[task].description
    return predict


def register(service: Service, concurrency: int) -> None:
    """Create the hidden components and the eight endpoints inside the current Blocks."""
    with gr.Column(visible=False):
        image = image_input(label="image", type="filepath", image_mode=None)
        text = gr.Textbox(label="text")
        prompts = gr.Textbox(label="prompts", value="[]")
        threshold = gr.Number(label="threshold", value=0.5, minimum=0, maximum=1)
        out_image = gr.Image(label="overlay", type="filepath", format="png")
        out_text = gr.Textbox(label="answer")
        out_json = gr.JSON(label="result")
        for task in TASKS:
            trigger = gr.Button(task)
            trigger.click(endpoint(service, task), [image, text, prompts, threshold], [out_image, out_text, out_json],
                          api_name=task, api_description=TASKS[task].description, concurrency_id=CONCURRENCY_ID,
                          concurrency_limit=concurrency, show_progress="hidden")
