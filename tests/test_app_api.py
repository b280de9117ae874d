"""Contract tests of the public API: the app launched in-process, called through gradio_client.

Every task endpoint takes (image, text, prompts JSON, threshold) and returns (overlay image, answer,
result JSON); bad input comes back as a readable error message.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from pycocotools import mask as mask_utils

from xsam_core.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "assets" / "examples" / "shapes-8.png"  # 220×180
REQUESTS = {  # task → (text, prompts); semantic / instance modes: random weights pass no panoptic overlap test
    "chat": ("What colour is the circle?", []),
    "genseg": ("sem: wall, floor, circle, cross", []),
    "ovseg": ("ins: circle, cross, ring", []),
    "refseg": ("the red circle", []),
    "reaseg": ("the round shape", []),
    "gcgseg": ("", []),
    "intseg": ("", [{"kind": "point", "x": 66, "y": 63}, {"kind": "point", "x": 170, "y": 45, "negative": True}]),
    "vgdseg": ("", [{"kind": "box", "box": [13, 91, 75, 154], "prompt": "1"},
                    {"kind": "point", "x": 66, "y": 63, "prompt": "2"}]),
}


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def call(client, task, image=SCENE, text="", prompts=(), threshold=0.5):
    image = handle_file(str(image)) if image is not None else None
    return client.predict(image, text, json.dumps(list(prompts)), threshold, api_name=f"/{task}")


def test_one_public_endpoint_per_task_and_segment(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/segment"} | {f"/{t}" for t in TASKS}
    for name, spec in api["named_endpoints"].items():
        assert [p["label"] for p in spec["parameters"]] == ["image", "text", "prompts", "threshold", "history"], name
        assert [r["label"] for r in spec["returns"]] == ["overlay", "answer", "result"], name
    assert not api["unnamed_endpoints"]


def test_openapi_lists_the_task_calls(client):
    import httpx

    paths = httpx.get(client.src.rstrip("/") + "/gradio_api/openapi.json").json()["paths"]
    assert {f"/gradio_api/call/{t}/{{event_id}}" for t in ("segment", *TASKS)} <= set(paths)


@pytest.mark.parametrize("task", list(TASKS))
def test_endpoint_contract(client, task):
    text, prompts = REQUESTS[task]
    overlay, answer, result = call(client, task, text=text, prompts=prompts, threshold=0.01)  # random weights
    with Image.open(overlay) as img:
        assert img.size == (220, 180) and img.mode == "RGB"
    assert isinstance(answer, str) and answer.split("\n⚠ ")[0] == result["text"]  # then what it could not show
    assert result["task"] == task
    assert result["image"] == {"height": 180, "width": 220}
    assert set(result) >= {"annotations", "phrases", "timings_ms", "info"}
    assert result["info"]["model"] == "xsam-ref-fixture"
    if task == "chat":
        assert result["annotations"] == []
        return
    assert result["annotations"], f"{task}: no masks"
    if task == "intseg":
        assert len(result["annotations"]) == 1
    for ann in result["annotations"]:
        mask = mask_utils.decode({"size": ann["segmentation"]["size"],
                                  "counts": ann["segmentation"]["counts"].encode()})
        assert mask.shape == (180, 220)
        assert int(mask.sum()) == ann["area"]
        assert 0 <= ann["score"] <= 1 and isinstance(ann["label"], str)
        assert len(ann["bbox"]) == 4
    if task == "gcgseg":
        assert result["phrases"] == ["a red circle", "the wall"]
        assert "<p>" in answer


@pytest.mark.parametrize(("text", "prompts", "task"), [
    ("segment the red circle", [], "refseg"),
    ("ins: circle, cross; sem: wall, floor", [], "genseg"),
    ("circle, cross, ring", [], "ovseg"),
    ("How many shapes are there?", [], "chat"),
    ("What could roll away?", [], "reaseg"),
    ("", [], "gcgseg"),
    ("", REQUESTS["intseg"][1], "intseg"),
    ("", REQUESTS["vgdseg"][1], "vgdseg"),
])
def test_segment_routes_and_says_which_task_ran(client, text, prompts, task):
    overlay, answer, result = call(client, "segment", text=text, prompts=prompts, threshold=0.01)
    assert result["task"] == task and result["info"]["ran_as"]["task"] == task
    assert result["info"]["ran_as"]["title"] == TASKS[task].title and result["info"]["ran_as"]["reason"]
    assert Path(overlay).name == f"xsam-{task}-overlay.png" and answer.split("\n⚠ ")[0] == result["text"]
    if task != "chat":
        assert all(a["segmentation"]["size"] == [180, 220] for a in result["annotations"])


def test_segment_refuses_like_the_tasks(client):
    with pytest.raises(AppError, match="(?i)no image"):
        call(client, "segment", image=None, text="the red circle")
    with pytest.raises(AppError, match="not valid JSON"):
        client.predict(handle_file(str(SCENE)), "", "[{kind: point", 0.5, api_name="/segment")


def test_prompts_for_other_tasks_are_ignored(client):
    _, _, result = call(client, "refseg", text="the red circle", prompts=[{"kind": "point", "x": 999, "y": 0}])
    assert result["task"] == "refseg"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"image": None, "text": "hi"}, "no image"),
    ({"text": ""}, "referring expression"),
    ({"text": "   "}, "referring expression"),
])
def test_refseg_errors(client, kwargs, message):
    with pytest.raises(AppError, match=f"(?i){message}"):
        call(client, "refseg", **kwargs)


@pytest.mark.parametrize(("task", "prompts", "message"), [
    ("intseg", [], "needs a visual prompt"),
    ("vgdseg", [], "needs a visual prompt"),
    ("intseg", [{"kind": "point", "x": 1, "y": 1, "negative": True}], "needs a visual prompt"),
    ("intseg", [{"kind": "point", "x": 500, "y": 40}], "outside the 220×180 image"),
    ("vgdseg", [{"kind": "box", "box": [300, 300, 400, 400]}], "outside"),
    ("intseg", [{"kind": "blob"}], "unknown prompt kind"),
    ("intseg", [{"kind": "point", "x": 5, "y": 5}, {"kind": "point", "x": 9, "y": 9, "prompt": "B"}],
     "exactly one visual prompt"),
])
def test_visual_prompt_errors(client, task, prompts, message):
    with pytest.raises(AppError, match=f"(?i){message}"):
        call(client, task, prompts=prompts)


def test_invalid_prompts_json(client):
    with pytest.raises(AppError, match="not valid JSON"):
        client.predict(handle_file(str(SCENE)), "", "[{kind: point", 0.5, api_name="/intseg")


def test_unknown_classes_syntax(client):
    with pytest.raises(AppError, match="(?i)name at least one class"):
        call(client, "genseg", text="ins: ; sem:")


@pytest.mark.parametrize(("content", "message"), [
    (b"this is not an image", "not a readable image"),
    (SCENE.read_bytes()[:300], "cannot read the image"),  # a truncated PNG: opens, fails to decode
])
def test_bad_files(client, tmp_path, content, message):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(AppError, match=f"(?i){message}"):
        call(client, "refseg", image=path, text="the red circle")


def test_huge_image(client, tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(path)  # 48 MP: compresses to a small file, refused by size
    with pytest.raises(AppError, match="MP"):
        call(client, "refseg", image=path, text="the red circle")


def test_file_over_the_upload_limit(client, tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(np.random.default_rng(0).bytes(21 * 1024 * 1024))
    with pytest.raises(Exception, match="(?i)size|large|413"):
        call(client, "refseg", image=path, text="the red circle")


def test_concurrent_identical_requests(client):
    """Identical concurrent requests give identical outputs: each must arrive whole (peers.md §4)."""
    text, prompts = REQUESTS["intseg"]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: call(client, "intseg", prompts=prompts), range(12)))
    sizes = {Image.open(overlay).size for overlay, _, _ in results}
    assert sizes == {(220, 180)}
    assert len({json.dumps(r[2]["annotations"]) for r in results}) == 1


def test_a_follow_up_request_takes_the_history(client):
    _, _, first = call(client, "refseg", text="the red circle")
    turn = first["info"]["turn"]
    assert "<p>the red circle</p>" in turn["question"] and "<SEG>" in turn["answer"]
    image = handle_file(str(SCENE))
    _, _, second = client.predict(image, "What colour is it?", "[]", 0.5, json.dumps([turn]), api_name="/chat")
    assert second["info"]["history"] == {"used": 1, "dropped": 0}
    assert second["info"]["prompt"].count("the red circle") == 1
    with pytest.raises(AppError, match="history is not valid JSON"):
        client.predict(image, "What colour is it?", "[]", 0.5, "[{", api_name="/chat")
