"""The public API: `/segment` (Auto: the task is picked from the request) and one named endpoint per
task, each (image, text, prompts JSON, threshold) → (overlay image, answer text, result JSON with COCO
RLE masks and the task that ran).

The endpoints hang off hidden components so that Gradio types them (image upload in, image file out);
the page's own events are private. With `--mcp` these endpoints, and only these, are also the MCP
server's tools: their docstrings are written for an LLM agent that calls them.
"""

from __future__ import annotations

import gradio as gr

from xsam_core.inference.processing import load_image
from xsam_core.inference.render import overlay
from xsam_core.tasks import TASKS
from xsam_core.tasks.routing import AUTO

from . import files, views
from .errors import friendly
from .image_input import image_input
from .service import Service

CONCURRENCY_ID = "xsam-model"  # every event that runs the model shares one limit
SEGMENT = "segment"  # the Auto endpoint's name (and MCP tool name)

# What an agent reads about each tool: one line per argument (Gradio's MCP server takes the
# argument descriptions from the `Args:` lines of the docstring) and what comes back.
ARGS = {
    "image": "the image (PNG, JPEG or WebP): an http(s) URL of the file, or a data:image/png;base64,... URL.",
    "text": "{text}",
    "prompts": ('visual prompts as a JSON list in original-image pixels, "[]" for none: '
                '[{{"kind": "point", "x": 40, "y": 52}}] clicks an object, {{"kind": "box", "box": [x0, y0, x1, y1]}} '
                'boxes it, {{"kind": "point", "x": 9, "y": 9, "negative": true}} rejects masks covering that pixel, '
                'and "prompt": "2" on an item starts a second region. {prompts}'),
    "threshold": "score threshold between 0 and 1 for keeping masks (0.5 is a good default; lower keeps more).",
    "history": ('earlier turns of a conversation about the same image, as a JSON list, oldest first: the '
                'info.turn object of each earlier result ({{"question": ..., "answer": ...}}); "[]" for a new one.'),
}
RETURNS = ("1. the image with the masks drawn on it (PNG). 2. the model's answer as text. "
           "3. the result as JSON: task (the task that ran), text, phrases, image {height, width}, "
           "annotations [{label, score, area, bbox [x, y, w, h], segmentation: COCO RLE {size, counts}}], "
           "info.ran_as {task, title, reason} when the task was picked automatically, info.turn (pass it in the "
           "history of a follow-up request), and info.no_match when the named object is not there.")
SEGMENT_DOC = ("Segment or answer anything in an image with X-SAM, from plain text and/or clicks: the task is "
               "picked from the request and named in the result (info.ran_as). Use it for: 'segment the red car' or "
               "'where is the dog?' (one object), 'ins: person, car; sem: road, sky' or 'cat, dog, sky' "
               "(every object of those classes), 'what could hold water?' (the object that answers), "
               "'how many people are there?' (a text answer), empty text (a caption with a mask per phrase), "
               "a point or box prompt (the object under it; add 'all like this' for every similar object).")
TEXTS = {
    AUTO: "what you want, in words: a phrase ('the red circle'), a question, a class list, or empty.",
    "chat": "a question about the image ('how many circles are there?').",
    "genseg": "classes as 'ins: thing1, thing2; sem: stuff1, stuff2' (ins: objects counted one by one, sem: "
              "regions such as sky or floor; both parts give panoptic masks).",
    "ovseg": "any class names, comma-separated ('star, circle, wall').",
    "refseg": "a phrase naming one object ('the small red circle left of the star').",
    "reaseg": "a question or description whose answer is one object ('what could hold water?').",
    "gcgseg": "ignored (the caption describes the whole image); pass an empty string.",
    "intseg": "ignored; pass an empty string.",
    "vgdseg": "ignored; pass an empty string.",
}
PROMPTS = {
    AUTO: "One region: the object under it; several regions (or text like 'all like this'): every similar object.",
    "intseg": "Exactly one region is required.",
    "vgdseg": "One or more regions are required: every object like them is segmented.",
}


def docstring(task: str) -> str:
    """The endpoint's description for the API page and for MCP agents."""
    if task == AUTO:
        head = SEGMENT_DOC
    else:
        spec = TASKS[task]
        head = (f"X-SAM {spec.title.lower()}: {spec.summary} (a fixed task; the `segment` tool picks the task "
                "itself).")
    prompts = PROMPTS.get(task, "This task ignores them: pass \"[]\".")
    args = {k: v.format(text=TEXTS[task], prompts=prompts) for k, v in ARGS.items()}
    lines = [head, "", "Args:", *(f"    {k}: {v}" for k, v in args.items()), "", "Returns:", f"    {RETURNS}"]
    return "\n".join(lines)


def endpoint(service: Service, task: str):
    name = SEGMENT if task == AUTO else task

    @friendly
    def predict(image: str | None, text: str, prompts: str, threshold: float, history: str = "[]"):
        pred, _ = service.predict(image, task, text, prompts, threshold, history=history)
        path = files.request_dir() / f"xsam-{pred.task}-overlay.png"
        overlay(load_image(image), pred).save(path)
        return str(path), views.with_warnings(pred.text, pred, sep="\n"), pred.to_json()

    predict.__name__ = name  # the MCP tool's name
    predict.__doc__ = docstring(task)
    return predict


def register(service: Service, concurrency: int) -> None:
    """Create the hidden components and the endpoints (/segment, then one per task) inside the current Blocks."""
    with gr.Column(visible=False):
        image = image_input(label="image", type="filepath", image_mode=None)
        text = gr.Textbox(label="text")
        prompts = gr.Textbox(label="prompts", value="[]")
        threshold = gr.Number(label="threshold", value=0.5, minimum=0, maximum=1)
        history = gr.Textbox(label="history", value="[]")
        out_image = gr.Image(label="overlay", type="filepath", format="png")
        out_text = gr.Textbox(label="answer")
        out_json = gr.JSON(label="result")
        for task in (AUTO, *TASKS):
            fn = endpoint(service, task)
            trigger = gr.Button(fn.__name__)
            # api_description None: the API page and the MCP tool list read the docstring
            trigger.click(fn, [image, text, prompts, threshold, history], [out_image, out_text, out_json],
                          api_name=fn.__name__, concurrency_id=CONCURRENCY_ID, concurrency_limit=concurrency,
                          show_progress="hidden")
