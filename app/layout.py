"""The page: inputs and prompt canvas on the left, results on the right, examples below."""

from __future__ import annotations

import functools

import gradio as gr

from xsam_core.tasks import TASKS
from xsam_core.tasks.routing import AUTO, AUTO_TASK

from . import api, examples
from .canvas import MODES, Canvas
from .handlers import Handlers, task_info
from .image_input import image_input
from .presets import PRESETS
from .service import Service
from .views import LEGEND_HEADERS, LEGEND_TYPES

CSS = """
.swatch {display:inline-block; width:14px; height:14px; border-radius:3px; vertical-align:middle;}
#banner {padding: 4px 8px;}
#status {font-size: 0.85em;}
#ran-as {min-height: 0;}
"""
MODE_LABELS = {"point": "+ Point", "negative": "− Negative point", "box": "Box (2 clicks)"}
STATE_TTL_S = 3600  # a session's canvas and last result are dropped after an idle hour
MAX_FILE_SIZE = "20mb"
PRIVATE = {"api_visibility": "private"}


def banner(service: Service, logging_on: bool) -> str:
    info = service.info
    lines = ["## X-SAM — from segment anything to any segmentation",
             f"Running **{info['model']}** on {info['device']} ({info['dtype']}"
             + (f", LLM weights {info['llm_weights']}" if info.get("llm_weights") else "") + ")."]
    if service.embedded:
        lines.append(
            "This is the embedded **tiny X-SAM** trained on a generated *shapes world*: circles, squares, "
            "triangles, stars, rings and crosses in 8 colours in front of a wall, on a floor. **It can** "
            "segment such scenes in every task (try the examples); about one chat answer in thirty is "
            "wrong, a small shape is sometimes taken for its neighbour, and captions misname about one "
            "object in seven (scores in its model card). **It cannot** handle real photos: for those run "
            "`python app.py --model hao9610/X-SAM` on a GPU.")
    if info.get("emulated_bf16"):
        lines.append("This CPU has no native bf16 (AVX512-BF16 or AMX) and emulates it, many times slower than "
                     "float32" + ("." if info.get("llm_weights") else ": `--quantize int8-cpu` runs the LLM in "
                                  "int8 and the rest in float32 where memory allows."))
    if logging_on:
        lines.append("**Notice: this server logs requests** (your images, prompts and results) to disk.")
    else:
        lines.append("Your images are not logged: they stay in a temporary cache for at most an hour.")
    return "  \n".join(lines)


def build_demo(predictor, log_dir: str | None = None, concurrency: int = 1, runner=None) -> gr.Blocks:
    """The whole app around one loaded Predictor. `concurrency`: model requests run at once. `runner`:
    the model call to use instead of the predictor's own (Ray Serve replicas, see `Service`)."""
    service = Service(predictor, log_dir, runner=runner)
    h = Handlers(service)
    model_event = {"concurrency_id": api.CONCURRENCY_ID, "concurrency_limit": concurrency, **PRIVATE}
    with gr.Blocks(title="X-SAM demo", delete_cache=(1800, 3600)) as demo:
        canvas_state = gr.State(Canvas(), time_to_live=STATE_TTL_S)
        editor_seed = gr.State(None)  # the scribble editor's image: a new value re-creates the editor
        result_state = gr.State(None, time_to_live=STATE_TTL_S)
        conversation = gr.State([], time_to_live=STATE_TTL_S)  # turns: what the model reads, what the page shows
        gr.Markdown(banner(service, log_dir is not None), elem_id="banner")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                # Auto first and the default: the rules of xsam_core/tasks/routing.py pick the task
                task = gr.Radio([(AUTO_TASK.title, AUTO)] + [(t.title, name) for name, t in TASKS.items()],
                                value=AUTO, label="Task", elem_id="task")
                info = gr.Markdown(task_info(AUTO))
                with gr.Tabs():
                    with gr.Tab("Image · click to prompt"):
                        canvas_img = image_input(label="Image (upload, webcam or paste; click to add prompts)",
                                                sources=["upload", "webcam", "clipboard"], type="filepath",
                                                image_mode=None, height=420, elem_id="canvas")
                    with gr.Tab("Scribble"):
                        scribble_tab = gr.Column()  # filled below by a render that needs every component
                    with gr.Tab("Mask upload"):
                        mask_img = gr.Image(label="Mask (white or opaque = region)", type="filepath",
                                            image_mode=None, sources=["upload", "clipboard"], height=300,
                                            elem_id="mask-upload")
                        add_mask = gr.Button("Add mask to the active prompt", size="sm")
                with gr.Group(visible=AUTO_TASK.takes_prompts) as tools:
                    with gr.Row():
                        mode = gr.Radio([(MODE_LABELS[m], m) for m in MODES], value="point", label="Click adds",
                                        scale=3)
                        active = gr.Radio([("Prompt 1", "1")], value="1", label="Active prompt", scale=2)
                    with gr.Row():
                        new_btn = gr.Button("+ New prompt", size="sm")
                        undo_btn = gr.Button("↶ Undo", size="sm")
                        clear_btn = gr.Button("✕ Clear prompts", size="sm")
                    summary = gr.Markdown("No image yet.", elem_id="prompt-summary")
                    with gr.Accordion("Prompts JSON (copy for the API, or paste and apply)", open=False):
                        prompts_json = gr.Code("[]", language="json", interactive=True, show_label=False,
                                               elem_id="canvas-json")
                        apply_json = gr.Button("Apply JSON", size="sm")
                text = gr.Textbox(label=AUTO_TASK.text.label, placeholder=AUTO_TASK.text.example, lines=2)
                preset = gr.Dropdown(list(PRESETS), value=None, label="Class presets", visible=AUTO_TASK.class_list)
                with gr.Row():
                    threshold = gr.Slider(0, 1, value=0.5, step=0.05, label="Score threshold")
                    seed = gr.Textbox(label="Seed (optional)", placeholder="empty: deterministic defaults",
                                      max_lines=1)
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run", scale=3)
                    follow_up = gr.Checkbox(label="Follow up (keep the conversation)", value=False,
                                            elem_id="follow-up", scale=2)
            with gr.Column(scale=1):
                overlay = gr.Image(label="Result", type="filepath", interactive=False, height=420, format="png",
                                   buttons=["download", "fullscreen"], elem_id="overlay")
                ran_as = gr.Markdown("", elem_id="ran-as")
                rerun = gr.Radio([(t.title, name) for name, t in TASKS.items()], value=None, visible=False,
                                 label="Re-run the same inputs as …", elem_id="rerun")
                gcg = gr.HighlightedText(label="Grounded caption (click a phrase)", visible=False,
                                         show_inline_category=False, combine_adjacent=False, elem_id="gcg")
                answer = gr.Textbox(label="Answer", interactive=False, lines=2, max_lines=8, elem_id="answer")
                legend = gr.Dataframe(headers=LEGEND_HEADERS, datatype=LEGEND_TYPES, interactive=False,
                                      label="Masks (click a row to highlight)", elem_id="legend",
                                      column_widths=["40px", "40px", None, "80px", "80px"])
                with gr.Row():
                    show_all = gr.Button("Show all masks", size="sm")
                    alpha = gr.Slider(0.1, 1, value=0.5, step=0.05, label="Mask opacity")
                downloads = gr.File(label="Downloads: overlay PNG, masks (PNG zip), COCO RLE JSON",
                                    file_count="multiple", interactive=False, elem_id="downloads")
                status = gr.Markdown("", elem_id="status")
                with gr.Accordion("Conversation on this image", open=True):
                    chat = gr.Chatbot(label="Conversation", elem_id="conversation", height=380, buttons=[])
                    conversation_note = gr.Markdown("", elem_id="conversation-note")
                    clear_chat = gr.Button("Clear conversation", size="sm", elem_id="clear-conversation")
        scenes = gr.Dataset(label="Examples: shapes-world scenes (embedded model)",
                            components=[gr.Image(visible=False), gr.Textbox(visible=False),
                                        gr.Textbox(visible=False)],
                            headers=["image", "task", "prompt"], type="index",
                            samples=[[e.path, e.task, e.text or _describe(e)] for e in examples.SHAPES])
        with gr.Accordion("Examples: photos (for the real X-SAM model)", open=not service.embedded):
            photos = gr.Dataset(components=[gr.Image(visible=False), gr.Textbox(visible=False),
                                            gr.Textbox(visible=False)],
                                headers=["image", "task", "prompt"], type="index", show_label=False,
                                samples=[[e.path, e.task, _short(e.text) or _describe(e)] for e in examples.PHOTOS])
        api.register(service, concurrency)

        canvas_out = [canvas_state, canvas_img, summary, prompts_json, active]
        conversation_out = [conversation, chat, conversation_note]
        result_out = [result_state, overlay, legend, answer, gcg, downloads, status, ran_as, rerun, *conversation_out]
        run_in = [canvas_state, task, text, threshold, seed, alpha, follow_up, conversation]

        image_out = [*canvas_out, editor_seed, *result_out]
        canvas_img.change(h.image_changed, [canvas_img, canvas_state], image_out, show_progress="hidden",
                          **PRIVATE).failure(h.image_refused, None, image_out, **PRIVATE)
        # A click made while the previous one is still being drawn runs after it (Gradio's default drops it).
        canvas_img.select(h.click, [canvas_state, mode, task], [*canvas_out, task], show_progress="hidden",
                          trigger_mode="always_last", **PRIVATE)
        for button, fn in ((undo_btn, h.undo), (clear_btn, h.clear), (new_btn, h.new_prompt)):
            button.click(fn, [canvas_state], canvas_out, show_progress="hidden", **PRIVATE)
        active.input(h.select_prompt, [canvas_state, active], canvas_out, show_progress="hidden", **PRIVATE)
        apply_json.click(h.apply_json, [canvas_state, prompts_json], canvas_out, **PRIVATE)

        with scribble_tab:
            # A fresh ImageEditor per image and after each added stroke: Gradio 6.31's editor cannot be
            # drawn on again once its value is replaced by an event.
            @gr.render(inputs=[editor_seed])
            def scribble_editor(image: str | None):
                editor = gr.ImageEditor(image, label="Draw on the object", type="numpy", sources=[],
                                        transforms=[], layers=False, height=420, elem_id="scribble", interactive=True,
                                        brush=gr.Brush(default_size=8, colors=["#00c853"], color_mode="fixed"),
                                        placeholder="Upload or pick an image first")
                with gr.Row():
                    add_scribble = gr.Button("Add as scribble", size="sm")
                    add_box = gr.Button("Add its bounding box", size="sm")
                for button, as_box in ((add_scribble, False), (add_box, True)):
                    button.click(functools.partial(h.add_strokes, as_box=as_box), [canvas_state, editor, task],
                                 [*canvas_out, editor_seed, task], **PRIVATE)

        add_mask.click(h.add_mask, [canvas_state, mask_img, task], [*canvas_out, task], **PRIVATE)

        task.change(h.task_changed, [task], [info, text, preset, tools], show_progress="hidden", **PRIVATE)
        preset.input(h.preset_chosen, [preset, task], [text], show_progress="hidden", **PRIVATE)

        run.click(h.run, run_in, result_out, **model_event)
        text.submit(h.run, run_in, result_out, **model_event)
        # One click re-runs the same image, text and prompts as another task (which becomes the selected one).
        rerun.input(h.rerun_as, [rerun], [task], show_progress="hidden", **PRIVATE).success(
            h.run, run_in, result_out, **model_event)
        clear_chat.click(h.clear_conversation, None, conversation_out, show_progress="hidden", **PRIVATE)
        legend.select(h.legend_selected, [result_state], [overlay], show_progress="hidden", **PRIVATE)
        gcg.select(h.phrase_selected, [result_state], [overlay], show_progress="hidden", **PRIVATE)
        show_all.click(h.show_all, [result_state], [overlay], show_progress="hidden", **PRIVATE)
        alpha.release(h.opacity_changed, [result_state, alpha], [result_state, overlay], show_progress="hidden",
                      **PRIVATE)

        for dataset, items in ((scenes, examples.SHAPES), (photos, examples.PHOTOS)):
            dataset.click(h.example_loader(items), [dataset], [*canvas_out, editor_seed, task, text, *result_out],
                          show_progress="hidden", **PRIVATE).success(h.run, run_in, result_out, **model_event)
    # Cheap events (clicks, legend) run 8 at a time; model events share their own limit (model_event).
    demo.queue(default_concurrency_limit=8, max_size=64)
    return demo


def _describe(example: examples.Example) -> str:
    return f"{len(example.prompts)} visual prompt(s)" if example.prompts else "(no text)"


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def launch_options() -> dict:
    """Options Gradio 6 takes at launch rather than in Blocks()."""
    return {"css": CSS, "theme": gr.themes.Soft(), "max_file_size": MAX_FILE_SIZE, "show_error": False}
