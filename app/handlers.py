"""Event handlers of the page. Per-session data lives in `gr.State` (a Canvas, a Result), never here.

Output orders (the layout wires the same lists):
  canvas outputs: canvas state, canvas image (the drawing), prompt summary, prompts JSON, active-prompt radio
  result outputs: result state, overlay, legend, answer, GCG phrases, downloads, status, "ran as" line,
                  "re-run as" choices
"""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from xsam_core.inference.processing import load_image
from xsam_core.inference.results import STAGES
from xsam_core.inference.visual_prompts import mask_from_image
from xsam_core.tasks import TASKS, get_task
from xsam_core.tasks.routing import spec

from . import files, views
from .canvas import Canvas, is_canvas_file
from .errors import USER_ERRORS, friendly, user_message
from .examples import Example
from .presets import PRESETS
from .service import Service

# Where visual prompts added in a task that reads none take the user: the task of one visual prompt.
PROMPT_TASK = next(name for name, t in TASKS.items() if t.regions == (1, 1))


# What the progress bar says while a stage runs: the released model on a CPU spends minutes on a request.
STAGE_WORDS = {
    "preprocess": "Reading the image and the request…",
    "siglip": "Encoding the image (SigLIP)…",
    "sam": "Encoding the image (SAM)…",
    "pixel_decoder": "Building the mask features…",
    "sampler": "Reading the visual prompts…",
    "prefill": "Reading the prompt (LLM)…",
    "decode": "Writing the answer…",
    "mask_decoder": "Decoding the masks…",
    "postprocess": "Finishing the masks…",
}


def stage_progress(progress):
    """`on_stage(name)` for the Predictor: moves `progress` from 0.1 to 0.8 through the stages, in their order."""

    def on_stage(name: str) -> None:
        progress(0.1 + 0.7 * STAGES.index(name) / len(STAGES), desc=STAGE_WORDS[name])

    return on_stage


def parse_seed(text: str | None) -> int | None:
    """Empty: the deterministic defaults; a number: the official demo's random draws, replayed."""
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise gr.Error("The seed is a whole number ≥ 0, or empty.", title="Seed", print_exception=False)
    return int(text)


def task_info(task: str) -> str:
    shown = spec(task)
    return f"{shown.description}.  \n**Needs:** {shown.needs}"


def canvas_outputs(canvas: Canvas, drawn: str | None = None) -> tuple:
    if drawn is None and canvas.base is not None:
        drawn = canvas.draw(files.request_dir())
    choices = [(f"Prompt {n}", n) for n in canvas.names]
    return (canvas, drawn, canvas.summary(), canvas.to_json(), gr.update(choices=choices, value=canvas.active))


def prompt_task(task: str):
    """Adding a visual prompt in a task that reads none switches to the task of one visual prompt."""
    if spec(task).takes_prompts:  # Auto too: its rules send visual prompts to the prompt tasks
        return gr.skip()
    readers = " or ".join(t.title.lower() for t in TASKS.values() if t.takes_prompts)
    gr.Info(f"Visual prompts are for {readers}: switched to {TASKS[PROMPT_TASK].title.lower()}.", duration=4)
    return PROMPT_TASK


def empty_results() -> tuple:
    """The result outputs of no result: also an empty conversation (a new image starts a new one)."""
    return (None, None, [], gr.update(value="", visible=True), gr.update(value=None, visible=False), None, "", "",
            gr.update(value=None, visible=False), *empty_conversation())


def empty_conversation() -> tuple:
    """Conversation state, chat view, its note."""
    return [], [], ""


# What an image change returns: the canvas outputs, the scribble editor's image, the result outputs.
IMAGE_OUTPUTS = len(canvas_outputs(Canvas())) + 1 + len(empty_results())


class Handlers:
    def __init__(self, service: Service):
        self.service = service

    # --- image and visual prompts ----------------------------------------------------------------

    def image_changed(self, path: str | None, canvas: Canvas):
        """A new upload, webcam shot, paste or clear. The canvas' own drawings come back here too
        (Gradio reports every value change): those are recognised by name and skipped."""
        if is_canvas_file(path):
            return (gr.skip(),) * IMAGE_OUTPUTS
        canvas = Canvas()
        if path is not None:
            try:
                canvas.set_image(path, files.request_dir())
            except USER_ERRORS as e:
                gr.Warning(user_message(e).message)
                canvas = Canvas()
        drawn = canvas.draw(files.request_dir()) if canvas.base else None
        return (*canvas_outputs(canvas, drawn), drawn, *empty_results())

    @staticmethod
    def image_refused():
        """After an upload Gradio could not decode (its message is shown): an empty canvas again."""
        return (*canvas_outputs(Canvas()), None, *empty_results())

    @friendly
    def click(self, canvas: Canvas, mode: str, task: str, evt: gr.SelectData):
        message = canvas.click(float(evt.index[0]), float(evt.index[1]), mode)
        if canvas.corner is not None:
            gr.Info(message, duration=3)
        return (*canvas_outputs(canvas), prompt_task(task))

    @friendly
    def undo(self, canvas: Canvas):
        canvas.undo()
        return canvas_outputs(canvas)

    @friendly
    def clear(self, canvas: Canvas):
        canvas.clear()
        return canvas_outputs(canvas)

    @friendly
    def new_prompt(self, canvas: Canvas):
        canvas.new_prompt()
        return canvas_outputs(canvas)

    @friendly
    def select_prompt(self, canvas: Canvas, name: str):
        canvas.select(name)
        return canvas_outputs(canvas)

    @friendly
    def apply_json(self, canvas: Canvas, text: str):
        canvas.load_json(text)
        gr.Info(f"{len(canvas.items)} prompt items loaded", duration=3)
        return canvas_outputs(canvas)

    @friendly
    def add_strokes(self, canvas: Canvas, editor: dict | None, task: str, as_box: bool):
        """Brush strokes of the scribble editor (every layer) → a mask item, or their bounding box."""
        layers = [np.asarray(layer) for layer in (editor or {}).get("layers") or [] if layer is not None]
        strokes = [layer[..., 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[2] == 4]
        if not strokes or not np.any(strokes):
            raise gr.Error("Draw on the image first (brush tool), then add the strokes.", print_exception=False)
        gr.Info(canvas.add_mask(np.logical_or.reduce(strokes), as_box=as_box), duration=3)
        out = canvas_outputs(canvas)
        return (*out, out[1], prompt_task(task))  # a new editor on the drawing: the strokes are now a prompt

    @friendly
    def add_mask(self, canvas: Canvas, path: str | None, task: str):
        """An uploaded mask image: its alpha where it has transparency, else its bright pixels."""
        if not path:
            raise gr.Error("Upload a mask image first (white or opaque = the region).", print_exception=False)
        gr.Info(canvas.add_mask(mask_from_image(Image.open(path))), duration=3)
        return (*canvas_outputs(canvas), prompt_task(task))

    # --- task inputs -----------------------------------------------------------------------------

    @staticmethod
    def task_changed(task: str):
        shown = spec(task)
        text = gr.update(visible=False) if shown.text is None else gr.update(
            visible=True, label=shown.text.label, placeholder=shown.text.example)
        return task_info(task), text, gr.update(visible=shown.class_list), gr.update(visible=shown.takes_prompts)

    @staticmethod
    def preset_chosen(name: str | None, task: str):
        if not name:
            return gr.skip()
        text = PRESETS[name]
        if spec(task).open_vocabulary:  # a plain list: every name a thing
            text = ", ".join(n.strip() for part in text.split(";") for n in part.split(":")[-1].split(","))
        return text

    # --- running ---------------------------------------------------------------------------------

    @friendly
    def run(self, canvas: Canvas, task: str, text: str, threshold: float, seed: str, alpha: float,
            follow_up: bool, conversation: list, progress=gr.Progress()):
        progress(0.1, desc=f"Running {spec(task).title.lower()}…")
        if canvas.image is None:
            raise gr.Error("Upload an image, paste one, take a webcam picture or pick an example first.",
                           title="No image", print_exception=False)
        conversation = list(conversation or []) if follow_up else []  # off: this run starts a new conversation
        pred, total = self.service.predict(canvas.image, task, text, canvas.prompts(task), threshold,
                                           parse_seed(seed), history=[t["turn"] for t in conversation],
                                           on_stage=stage_progress(progress))
        progress(0.8, desc="Rendering…")
        outdir, img = files.request_dir(), load_image(canvas.image)
        downloads = views.exports(pred, img, outdir, alpha)
        result = views.make_result(pred, img, outdir, alpha)
        gcg = gr.update(visible=False, value=None)
        answer = gr.update(visible=True, value=views.with_warnings(views.answer_text(pred) or "(no text)", pred))
        if get_task(pred.task).grounded_answer:  # the task that ran (Auto picks one)
            spans, color_map, result.labels = views.gcg_phrases(pred)
            gcg = gr.update(visible=True, value=spans, color_map=color_map)
            answer = gr.update(visible=False, value=views.answer_text(pred))
        rerun = gr.update(visible=True, value=pred.task)
        shown = views.overlay_file(result)
        conversation.append(views.conversation_turn(pred, text, shown))
        return (result, shown, views.legend_rows(pred), answer, gcg, downloads, views.status_line(pred, total),
                views.ran_as_line(pred), rerun, conversation, views.chat_messages(conversation),
                views.conversation_note(pred, len(conversation)))

    @staticmethod
    def clear_conversation():
        return empty_conversation()

    @staticmethod
    def rerun_as(task: str | None):
        """"Re-run as …": that task becomes the selected one; the run that follows reads the same inputs."""
        if not task:
            raise gr.Error("Pick the task to re-run as.", print_exception=False)
        return task

    # --- result views (no model run) -------------------------------------------------------------

    @friendly
    def legend_selected(self, result: views.Result | None, evt: gr.SelectData):
        if result is None:
            return gr.skip()
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return views.overlay_file(result, highlight=int(row))

    @friendly
    def phrase_selected(self, result: views.Result | None, evt: gr.SelectData):
        if result is None or not evt.value:
            return gr.skip()
        owned = result.labels.get(evt.value[1] if isinstance(evt.value, (list, tuple)) else evt.value) or []
        return views.overlay_file(result, highlight=owned[0] if owned else None)

    @friendly
    def show_all(self, result: views.Result | None):
        return gr.skip() if result is None else views.overlay_file(result)

    @friendly
    def opacity_changed(self, result: views.Result | None, alpha: float):
        if result is None:
            return gr.skip(), gr.skip()
        result.alpha = alpha
        return result, views.overlay_file(result)

    # --- examples --------------------------------------------------------------------------------

    def example_loader(self, examples: list[Example]):
        @friendly
        def load(index: int):
            example = examples[index]
            canvas = Canvas()
            canvas.set_image(example.path, files.request_dir())
            if example.prompts:
                canvas.load_json(example.prompts)
            out = canvas_outputs(canvas)
            return (*out, out[1], example.task, example.text, *empty_results())

        return load
