"""The app's pieces without a server: prompt canvas, result views, presets, seed parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.canvas import Canvas, display_scale, is_canvas_file
from app.presets import ADE20K, COCO_STUFF, COCO_THINGS, PRESETS
from xsam_core.inference.results import Prediction
from xsam_core.inference.visual_prompts import VisualPromptError, build_regions
from xsam_core.tasks.common import Segment
from xsam_core.tasks.genseg import parse_classes


@pytest.fixture
def canvas(tmp_path) -> Canvas:
    path = tmp_path / "scene.png"
    Image.new("RGB", (200, 100), "gray").save(path)
    c = Canvas()
    c.set_image(str(path), tmp_path)
    return c


def test_display_scale_enlarges_small_and_reduces_large_images():
    assert display_scale(200, 100) == 512 / 200
    assert display_scale(800, 600) == 1
    assert display_scale(4000, 3000) == 1024 / 4000


def test_clicks_are_stored_in_original_pixels(canvas):
    s = canvas.scale
    canvas.click(50 * s, 20 * s, "point")
    canvas.click(10 * s, 90 * s, "negative")
    assert canvas.items == [{"kind": "point", "x": 50, "y": 20, "prompt": "1"},
                            {"kind": "point", "x": 10, "y": 90, "negative": True}]


def test_clicks_outside_are_clamped_to_the_image(canvas):
    canvas.click(-5, 10_000, "point")
    assert (canvas.items[0]["x"], canvas.items[0]["y"]) == (0, 99)


def test_box_takes_two_clicks_in_any_corner_order(canvas):
    s = canvas.scale
    assert "first corner" in canvas.click(120 * s, 80 * s, "box")
    assert canvas.items == [] and canvas.corner is not None
    canvas.click(20 * s, 10 * s, "box")
    assert canvas.items == [{"kind": "box", "box": [20, 10, 120, 80], "prompt": "1"}]
    assert canvas.corner is None


def test_undo_drops_a_pending_corner_first_then_items(canvas):
    canvas.click(5, 5, "point")
    canvas.click(10, 10, "box")
    canvas.undo()
    assert canvas.corner is None and len(canvas.items) == 1
    canvas.undo()
    assert canvas.items == []
    canvas.undo()  # nothing left: no error


def test_named_prompts_and_what_each_task_gets(canvas):
    canvas.click(10, 10, "point")
    canvas.click(300, 200, "negative")
    assert canvas.new_prompt() == "2"
    canvas.click(100, 100, "point")
    assert [i.get("prompt") for i in canvas.prompts("vgdseg")] == ["1", None, "2"]
    assert [i.get("prompt") for i in canvas.prompts("intseg")] == [None, "2"]  # the active one + negatives
    canvas.select("1")
    assert [i.get("prompt") for i in canvas.prompts("intseg")] == ["1", None]
    assert canvas.prompts("refseg") == []
    regions = build_regions(canvas.prompts("vgdseg"), 100, 200)
    assert regions.names == ["1", "2"] and len(regions.negative_points) == 1
    assert "**Prompt 1**: 1 point ◀ active" in canvas.summary() and "negative points**: 1" in canvas.summary()


def test_clear_starts_over(canvas):
    canvas.new_prompt()
    canvas.click(10, 10, "point")
    canvas.clear()
    assert (canvas.items, canvas.names, canvas.active) == ([], ["1"], "1")


def test_masks_are_resized_to_the_image_and_stored_as_rle(canvas):
    mask = np.zeros((50, 100), bool)
    mask[10:20, 30:60] = True  # half size: doubled to the image
    canvas.add_mask(mask)
    (item,) = canvas.items
    assert item["kind"] == "mask" and item["rle"]["size"] == [100, 200]
    region = build_regions(canvas.items, 100, 200).masks[0]
    assert region.sum() == 20 * 60
    canvas.add_mask(mask, as_box=True)
    assert canvas.items[1] == {"kind": "box", "box": [60, 20, 119, 39], "prompt": "1"}
    with pytest.raises(VisualPromptError, match="empty"):
        canvas.add_mask(np.zeros((100, 200), bool))


def test_json_round_trip_and_validation(canvas):
    canvas.click(10, 10, "point")
    canvas.new_prompt()
    canvas.click(300, 100, "box")
    canvas.click(400, 200, "box")
    text = canvas.to_json()
    other = Canvas(**{**canvas.__dict__, "items": [], "names": ["1"], "active": "1"})
    other.load_json(text)
    assert other.items == json.loads(text) and other.names == ["1", "2"]
    with pytest.raises(VisualPromptError, match="outside"):
        other.load_json('[{"kind": "point", "x": 500, "y": 5}]')
    with pytest.raises(VisualPromptError, match="JSON"):
        other.load_json("[{")
    assert other.items == json.loads(text)  # unchanged after a refused paste


def test_needs_an_image():
    with pytest.raises(VisualPromptError, match="image first"):
        Canvas().click(1, 1, "point")


def test_drawing_is_display_sized_and_named_as_the_apps_own(canvas, tmp_path):
    canvas.click(100, 50, "point")
    canvas.click(300, 50, "negative")
    canvas.click(10, 10, "box")
    path = canvas.draw(tmp_path)
    assert is_canvas_file(path) and not is_canvas_file(str(tmp_path / "upload.png"))
    with Image.open(path) as img:
        assert img.size == (512, 256)
        assert img.getpixel((100, 50)) != (128, 128, 128)  # the point is drawn


def test_presets_parse_as_the_core_reads_them():
    assert (len(COCO_THINGS), len(COCO_STUFF), len(ADE20K)) == (80, 53, 150)
    things, stuff = parse_classes(PRESETS["COCO panoptic (80 things + 53 stuff)"])
    assert things == COCO_THINGS and stuff == COCO_STUFF
    assert parse_classes(PRESETS["ADE20K semantic (150 classes)"]) == ([], ADE20K)
    things, stuff = parse_classes(PRESETS["Shapes world (embedded model)"])
    assert "circle" in things and stuff == ["wall", "floor"]


def test_gcg_phrases_carry_their_mask_colours():
    from app.views import answer_text, gcg_phrases
    from xsam_core.inference.render import segment_colors

    mask = np.zeros((4, 4), bool)
    pred = Prediction(task="gcgseg", text="", raw_text="<p> a red circle </p> near <p> the wall </p> . <SEG> .",
                      image_size=(4, 4), segments=[Segment(mask, "a red circle", 0.9, 0),
                                                   Segment(mask, "the wall", 0.8, 1)])
    spans, color_map, owned = gcg_phrases(pred)
    assert [label for _, label in spans if label] == ["a red circle", "the wall"]
    assert list(color_map.values()) == segment_colors(pred)
    assert owned == {"a red circle": [0], "the wall": [1]}
    assert answer_text(pred) == "a red circle near the wall. [SEG]."


def test_seed_parsing():
    import gradio as gr

    from app.handlers import parse_seed

    assert parse_seed("") is None and parse_seed(" 42 ") == 42
    with pytest.raises(gr.Error):
        parse_seed("-1")


class _Predictor:
    """Just enough of a Predictor for the service: a description and a prediction."""

    def __init__(self, name="xsam-tiny-shapes"):
        self.name = name

    def describe(self):
        return {"model": self.name, "device": "cpu", "dtype": "float32"}

    def predict(self, image, task, text, prompts, threshold=0.5, seed=None, history=None, on_stage=None):
        return Prediction(task=task, text="sure", image_size=(100, 200))


def test_banner_says_what_runs_and_whether_requests_are_logged(tmp_path):
    from app.layout import banner
    from app.service import Service

    embedded = banner(Service(_Predictor()), logging_on=False)
    assert "xsam-tiny-shapes" in embedded and "It cannot" in embedded and "hao9610/X-SAM" in embedded
    assert "not logged" in embedded
    other = banner(Service(_Predictor("xsam-phi3"), log_dir=str(tmp_path)), logging_on=True)
    assert "It cannot" not in other and "logs requests" in other and "emulates" not in other


def test_banner_points_a_cpu_that_emulates_bf16_to_int8(monkeypatch):
    from app.layout import banner
    from app.service import Service

    info = {"model": "xsam-phi3", "device": "cpu", "dtype": "bfloat16", "emulated_bf16": True}
    monkeypatch.setattr(_Predictor, "describe", lambda self: info)
    assert "--quantize int8-cpu" in banner(Service(_Predictor("xsam-phi3")), logging_on=False)
    info["llm_weights"] = "int8-cpu"  # already quantised, the rest in bf16 for want of memory: no advice
    text = banner(Service(_Predictor("xsam-phi3")), logging_on=False)
    assert "emulates" in text and "--quantize" not in text


def test_requests_are_logged_only_with_a_log_dir(tmp_path):
    from app.service import Service

    image = tmp_path / "in.png"
    Image.new("RGB", (200, 100)).save(image)
    Service(_Predictor()).predict(str(image), "chat", "hi", "[]", 0.5)
    assert not any(tmp_path.glob("log/**/*"))
    Service(_Predictor(), log_dir=str(tmp_path / "log")).predict(str(image), "chat", "hi", "[]", 0.5)
    (record,) = [json.loads(line) for line in (tmp_path / "log" / "requests.jsonl").read_text().splitlines()]
    assert record["task"] == "chat" and record["answer"] == "sure"
    assert (tmp_path / "log" / record["image"]).exists()


def test_without_spaces_the_runner_is_the_plain_function():
    from app import gpu

    run = gpu.model_runner(_Predictor())
    assert gpu.spaces is None and run.__name__ == "run"


def test_on_zerogpu_the_stage_callback_stays_behind(monkeypatch):
    """ZeroGPU pickles the arguments to its GPU worker: the page's progress callback (a closure) must not
    go with them, and the request still runs."""
    import pickle
    import types

    from app import gpu

    def fake_gpu(duration):
        def wrap(fn):
            return lambda *args, **kw: fn(*pickle.loads(pickle.dumps(args)), **pickle.loads(pickle.dumps(kw)))
        return wrap

    monkeypatch.setattr(gpu, "spaces", types.SimpleNamespace(GPU=fake_gpu))
    run = gpu.model_runner(_Predictor())
    pred = run("img.png", "chat", "hi", [], 0.5, None, [], on_stage=lambda name: None)
    assert pred.text == "sure"


def test_a_run_moves_the_progress_bar_through_the_model_stages(canvas, predictor):
    """What the page shows while a request runs (minutes for the released model on a CPU): each stage's
    words in turn, the bar only moving forward, then the rendering."""
    from app.handlers import STAGE_WORDS, Handlers
    from app.service import Service
    from conftest import Forced

    shown = []
    Handlers(Service(Forced(predictor))).run(canvas, "refseg", "the box", 0.5, "", 0.5, False, [],
                                             progress=lambda fraction, desc: shown.append((fraction, desc)))
    words = [desc for _, desc in shown]
    for stage in ("sam", "prefill", "decode", "mask_decoder", "postprocess"):
        assert STAGE_WORDS[stage] in words
    assert words.index(STAGE_WORDS["sam"]) < words.index(STAGE_WORDS["prefill"]) < words.index(
        STAGE_WORDS["mask_decoder"]) and words[-1] == "Rendering…"
    fractions = [f for f, _ in shown]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] <= 0.8
