"""Result views: overlay files, legend rows, GCG phrases with their mask colours, downloads, status.

Everything is drawn by `xsam_core.inference.render`; this module only adapts a Prediction to Gradio values.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from xsam_core.inference import render
from xsam_core.inference.results import STAGES, Prediction
from xsam_core.tasks import TASKS, get_task

from .canvas import display_scale

NO_MASK = "#9e9e9e"  # a phrase whose mask is missing


@dataclass
class Result:
    """One session's last prediction at display size, kept so that legend and phrase clicks re-render
    without running the model. Display size bounds what a session holds (≤ 1024 px masks)."""

    pred: Prediction
    image: str  # the display-size image file
    outdir: Path
    labels: dict = field(default_factory=dict)  # GCG label → segment indices
    alpha: float = 0.5


def make_result(pred: Prediction, img: Image.Image, outdir: Path, alpha: float) -> Result:
    shown_img, shown = _resized(img, pred, display_scale(*img.size))
    path = outdir / "view.png"
    shown_img.save(path)
    return Result(shown, str(path), outdir, alpha=alpha)


def _resized(img: Image.Image, pred: Prediction, scale: float) -> tuple[Image.Image, Prediction]:
    """The image and a copy of the prediction at display size (masks resized nearest)."""
    shown = copy.copy(pred)
    shown.label_map = None  # full size and not drawn
    if scale == 1:
        return img, shown
    size = (round(img.width * scale), round(img.height * scale))

    def resize(mask: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(size, Image.NEAREST)).astype(bool)

    shown.segments = [copy.copy(s) for s in pred.segments]
    for s in shown.segments:
        s.mask = resize(s.mask)
    shown.regions = [resize(m) for m in pred.regions]
    shown.image_size = (size[1], size[0])
    if pred.info.get("negative_points"):
        shown.info = dict(pred.info, negative_points=[(x * scale, y * scale) for x, y in pred.info["negative_points"]])
    return img.resize(size, Image.LANCZOS), shown


def overlay_file(result: Result, highlight: int | None = None) -> str:
    """The overlay at display size, in a new uniquely named file."""
    path = result.outdir / f"overlay-view-{time.time_ns()}.png"
    render.overlay(result.image, result.pred, highlight=highlight, alpha=result.alpha).save(path)
    return str(path)


def exports(pred: Prediction, img: Image.Image, outdir: Path, alpha: float) -> list[str]:
    """Downloads at the original resolution: overlay PNG, one PNG per mask in a zip, COCO RLE JSON."""
    stem = f"xsam-{pred.task}-{time.strftime('%H%M%S')}"
    png, zipped, js = (outdir / f"{stem}{suffix}" for suffix in ("-overlay.png", "-masks.zip", ".json"))
    render.overlay(img, pred, alpha=alpha).save(png)
    zipped.write_bytes(pred.masks_zip())
    js.write_text(json.dumps(pred.to_json(), indent=1))
    return [str(png), str(zipped), str(js)]


def legend_rows(pred: Prediction) -> list[list]:
    h, w = pred.image_size
    rows = []
    for i, entry in enumerate(render.legend(pred)):
        swatch = f'<span class="swatch" style="background:{entry["color"]}"></span>'
        area = f"{100 * entry['area'] / max(h * w, 1):.1f}%"
        rows.append([swatch, i + 1, entry["label"], round(float(entry["score"]), 3), area])
    return rows


LEGEND_HEADERS = ["", "#", "label", "score", "area"]
LEGEND_TYPES = ["html", "number", "str", "number", "str"]


def gcg_phrases(pred: Prediction) -> tuple[list[tuple[str, str | None]], dict[str, str], dict[str, list[int]]]:
    """The GCG answer as HighlightedText spans: each phrase labelled and coloured like its mask.

    Returns (spans, color_map, label → segment indices)."""
    colors = render.segment_colors(pred)
    spans: list[tuple[str, str | None]] = []
    color_map: dict[str, str] = {}
    segments: dict[str, list[int]] = {}
    for text, j in pred.pieces():
        if j is None:
            spans.append((text, None))
            continue
        label = text if text not in color_map else f"{text} ({j + 1})"  # labels key the colours: unique
        owned = [k for k, s in enumerate(pred.segments) if s.category_id == j]
        color_map[label] = colors[owned[0]] if owned else NO_MASK
        segments[label] = owned
        spans.append((text, label))
    return spans, color_map, segments


def answer_text(pred: Prediction) -> str:
    """The answer as read: phrase markers dropped, word-level spacing tidied, <SEG> shown as [SEG]."""
    return "".join(text for text, _ in pred.pieces())


def with_warnings(text: str, pred: Prediction, sep: str = "\n\n") -> str:
    """`text` followed by what the result could not show, a ⚠ line each (where the answer is read)."""
    return sep.join([text] * bool(text) + [f"⚠ {w}" for w in warnings(pred)])


def conversation_turn(pred: Prediction, text: str, overlay: str) -> dict:
    """One turn of the page's conversation: what the model reads next time, and what the page shows."""
    reply = with_warnings(answer_text(pred) or "(no text)", pred)
    return {"turn": pred.info["turn"], "user": text.strip() or "(no text)", "task": TASKS[pred.task].title,
            "reply": reply, "overlay": overlay, "masks": len(pred.segments)}


def chat_messages(conversation: list[dict]) -> list[dict]:
    """The conversation for gr.Chatbot: each question, its answer, and under it the turn's own masks."""
    out = []
    for t in conversation:
        out.append({"role": "user", "content": t["user"]})
        out.append({"role": "assistant", "content": f"*{t['task']}* · {t['reply']}"})
        if t["masks"]:
            out.append({"role": "assistant", "content": {"path": t["overlay"]}})
    return out


def conversation_note(pred: Prediction, turns: int) -> str:
    dropped = (pred.info.get("history") or {}).get("dropped", 0)
    note = f"{turns} turn{'s' if turns != 1 else ''} on this image."
    if dropped:
        note += (f" The oldest {dropped} did not fit the model's context and were left out of this answer's "
                 "prompt (they stay shown here).")
    return note


def ran_as_line(pred: Prediction) -> str:
    """Which task ran and why: the router's reason under Auto, else the task that was chosen."""
    ran_as = pred.info.get("ran_as")
    if ran_as:
        return f"Ran as **{ran_as['title']}** — {ran_as['reason']}."
    return f"Ran as **{get_task(pred.task).title}** (the task you chose)."


def status_line(pred: Prediction, total_ms: float) -> str:
    info = pred.info
    stages = " · ".join(f"{k} {pred.timings[k]:.0f} ms" for k in STAGES if k in pred.timings)
    cached = "image cached" if info.get("image_cached") else "image encoded"
    n = len(pred.segments)
    dtype = info.get("dtype", "?") + (f" (LLM {info['llm_weights']})" if info.get("llm_weights") else "")
    line = (f"**{info.get('model', '?')}** · {info.get('device', '?')} · {dtype} · "
            f"{n} mask{'s' if n != 1 else ''} · {cached} · {stages} · **total {total_ms:.0f} ms**")
    for note in notes(pred):
        line += f"  \nNote: {note}"
    return line


def warnings(pred: Prediction) -> list[str]:
    """What the answer alone would hide: no match, classes not found, unknown words, a chat question
    the model was not trained on, an empty answer, empty masks."""
    info = pred.info
    out = [info.get("no_match") and f"{info['no_match']}: no mask is drawn; lower the threshold to see the best guess"]
    out.append(info.get("not_found") and f"nothing found for {', '.join(info['not_found'])}")
    out += [info.get("note_words"), info.get("note_question"), info.get("empty_answer"), info.get("empty_masks")]
    return [n for n in out if n]


def notes(pred: Prediction) -> list[str]:
    """Everything the status line says beyond timings: the warnings, then ignored input, then what the
    model read in place of the image's own pixels."""
    info = pred.info
    said = warnings(pred) + [info.get("note")] + list(info.get("ignored") or []) + [info.get("colour_fitted")]
    return [n for n in said if n]
