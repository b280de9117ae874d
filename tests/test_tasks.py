"""The task protocol and the core's request rules: every entry point accepts and refuses alike."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from app.service import Service
from xsam_core.cli import main
from xsam_core.errors import PromptError, VisualPromptError
from xsam_core.inference.visual_prompts import build_regions
from xsam_core.masks import mask_to_rle
from xsam_core.tasks import TASKS, check_request
from xsam_core.tasks.base import CLASS_MASKS, ONE_MASK, PHRASE_MASKS, SIMILAR_MASKS, TEXT, Task, TextInput

POINT = {"kind": "point", "x": 20, "y": 30}


@pytest.mark.parametrize("name", TASKS)
def test_every_task_declares_what_it_takes_and_shows(name):
    task = TASKS[name]
    assert isinstance(task, Task) and task.name == name
    assert task.title and task.summary and task.needs and task.description.startswith(task.title)
    assert task.output in (TEXT, ONE_MASK, PHRASE_MASKS, SIMILAR_MASKS, CLASS_MASKS)
    assert (task.postprocess is None) == (task.output == TEXT)
    low, high = task.regions
    assert 0 <= low <= high and task.takes_prompts == (high > 0)
    assert task.text is None or (isinstance(task.text, TextInput) and task.text.label and task.text.example)
    assert task.takes_prompts or task.text is not None or task.output == PHRASE_MASKS  # something to ask
    assert task.output == TEXT or task.answers  # what the model learnt to answer


def test_the_registry_knows_each_kind():
    by_output = {}
    for name, task in TASKS.items():
        by_output.setdefault(task.output, []).append(name)
    assert by_output == {TEXT: ["chat"], CLASS_MASKS: ["genseg", "ovseg"], ONE_MASK: ["refseg", "reaseg", "intseg"],
                         PHRASE_MASKS: ["gcgseg"], SIMILAR_MASKS: ["vgdseg"]}
    assert [n for n, t in TASKS.items() if t.phrase_masks] == ["refseg", "reaseg", "gcgseg"]
    assert [n for n, t in TASKS.items() if t.grounded_answer] == ["gcgseg"]


def test_check_request_drops_what_a_task_does_not_read():
    refseg = check_request(TASKS["refseg"], "the box", [POINT])
    assert refseg.text == "the box" and refseg.prompts == []
    assert refseg.notes == ["referring segmentation reads no visual prompts: 1 ignored"]
    gcg = check_request(TASKS["gcgseg"], "describe it", [])
    assert gcg.text == "" and gcg.notes == ["grounded caption reads no text: the text was ignored"]
    vgd = check_request(TASKS["vgdseg"], "", [POINT, dict(POINT, prompt="2")])
    assert vgd.prompts == [POINT, dict(POINT, prompt="2")] and vgd.notes == []


@pytest.mark.parametrize("items", [[], [dict(POINT, negative=True)]])
def test_check_request_refuses_a_prompt_task_without_a_positive_prompt(items):
    for name in ("intseg", "vgdseg"):
        with pytest.raises(VisualPromptError, match="needs a visual prompt"):
            check_request(TASKS[name], "", items)


def test_predictor_applies_the_rules(predictor, scene):
    pred = predictor.predict(scene, "refseg", "the red box", [POINT], force_answer="Sure, <SEG>.")
    assert pred.region_names == [] and pred.regions == []
    assert pred.info["ignored"] == ["referring segmentation reads no visual prompts: 1 ignored"]
    with pytest.raises(PromptError, match="interactive segmentation takes exactly one visual prompt .got 2"):
        predictor.predict(scene, "intseg", prompts=[POINT, dict(POINT, prompt="B")], force_answer="Sure, <SEG>.")


def _error(fn) -> str:
    try:
        fn()
    except (PromptError, VisualPromptError) as e:
        return str(e)
    raise AssertionError("no error")


def test_app_cli_and_core_refuse_alike(predictor, scene, ref_model, tmp_path, capsys):
    """The same request refused with the same message by the core, the app's service and the CLI."""
    image = tmp_path / "scene.png"
    scene.save(image)
    two = [POINT, dict(POINT, prompt="B")]
    for task, prompts in (("intseg", []), ("vgdseg", [dict(POINT, negative=True)]), ("intseg", two)):
        core = _error(lambda: predictor.predict(scene, task, prompts=prompts, force_answer="Sure, <SEG>."))
        app = _error(lambda: Service(predictor).predict(str(image), task, "", prompts, 0.5))
        rc = main(["predict", "--image", str(image), "--task", task, "--prompts", json.dumps(prompts),
                   "--model", str(ref_model), "--answer", "Sure, <SEG>.", "--out", str(tmp_path / "out")])
        cli = capsys.readouterr().err
        assert rc == 1 and core == app and f"scene.png: error: {core}" in cli, (task, core, app, cli)


def test_cli_says_what_it_ignored(ref_model, tmp_path, scene, capsys):
    image = tmp_path / "scene.png"
    scene.save(image)
    rc = main(["predict", "--image", str(image), "--task", "refseg", "--text", "the red box", "--prompts",
               '[{"kind": "point", "x": 20, "y": 30}]', "--model", str(ref_model), "--answer", "Sure, <SEG>.",
               "--out", str(tmp_path / "out")])
    assert rc == 0
    assert "scene.png: note: referring segmentation reads no visual prompts: 1 ignored" in capsys.readouterr().err


def _png(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_uploaded_mask_rule_is_in_the_core():
    """A base64 PNG mask item: alpha where transparent, else bright pixels; resized to the image."""
    h, w = 40, 60
    mask = np.zeros((h, w), bool)
    mask[10:30, 5:25] = True
    as_rle = build_regions([{"kind": "mask", "rle": mask_to_rle(mask)}], h, w).masks[0]
    gray = Image.fromarray(mask.astype(np.uint8) * 255)
    rgba = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    rgba.putalpha(gray)  # black everywhere: only the alpha says where the region is
    double = gray.resize((2 * w, 2 * h), Image.NEAREST)
    for img in (gray, rgba, double):
        got = build_regions([{"kind": "mask", "png": _png(img)}], h, w).masks[0]
        assert np.array_equal(got, as_rle)
    with pytest.raises(VisualPromptError, match="not a base64-encoded image"):
        build_regions([{"kind": "mask", "png": "bm90IGFuIGltYWdl"}], h, w)


def test_dtype_choice(monkeypatch):
    import torch

    from xsam_core.inference import predictor as P

    monkeypatch.setattr(P, "native_bf16", lambda: True)
    assert P.choose_dtype("cpu", 4_600_000_000) == torch.bfloat16  # the released model on an AMX / AVX512-BF16 CPU
    assert P.choose_dtype("cpu", 7_800_000) == torch.float32  # the embedded model: tiny, float32 everywhere
    assert P.choose_dtype("cpu", 4_600_000_000, "float32") == torch.float32
    monkeypatch.setattr(P, "native_bf16", lambda: False)
    monkeypatch.setattr(P, "physical_memory", lambda: 64 << 30)
    assert P.choose_dtype("cpu", 4_600_000_000, "auto") == torch.float32  # emulated bf16 is slower than float32
    monkeypatch.setattr(P, "physical_memory", lambda: 24 << 30)
    assert P.choose_dtype("cpu", 4_600_000_000, "auto") == torch.bfloat16  # 18.5 GB of float32 would not fit
    assert P.choose_dtype("cuda", 4_600_000_000) == torch.bfloat16
    assert P.choose_dtype("cpu", 10, "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        P.choose_dtype("cpu", 10, "half")


def test_loading_in_a_requested_dtype(ref_model):
    import torch

    from xsam_core.inference.predictor import Predictor

    assert Predictor.load(str(ref_model)).describe()["dtype"] == "float32"
    assert Predictor.load(str(ref_model), dtype="bfloat16").describe()["dtype"] == "bfloat16"
    assert Predictor.load(str(ref_model), dtype=torch.float16).model.llm.dtype == torch.float16
