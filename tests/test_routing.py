"""Auto: the routing table (requests and the task each must reach), then Auto through the Predictor,
`xsam_core.segment` and the CLI. A misroute is a failure: change the rules in
xsam_core/tasks/routing.py, not this table, unless the table is wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xsam_core.tasks import TASKS
from xsam_core.tasks.routing import AUTO, AUTO_TASK, route, spec

P = {"kind": "point", "x": 20, "y": 30}
BOX = {"kind": "box", "box": [5, 5, 30, 30]}
NEG = {"kind": "point", "x": 90, "y": 10, "negative": True}
TWO = [dict(P, prompt="1"), dict(BOX, prompt="2")]
SAME = None  # the chosen task reads the text as typed

# (text, prompts, task, the text the task reads: SAME, or the string)
TABLE = [
    # visual prompts decide first
    ("", [P], "intseg", ""),
    ("", [BOX, NEG], "intseg", ""),
    ("segment this", [P], "intseg", ""),
    ("ins: circle; sem: wall", [P], "intseg", ""),
    ("", TWO, "vgdseg", ""),
    ("the red circle", TWO, "vgdseg", ""),
    ("all like this", [P], "vgdseg", ""),
    ("find every object like this one", [BOX], "vgdseg", ""),
    ("segment the others like it", [P], "vgdseg", ""),
    ("similar shapes", [P], "vgdseg", ""),
    # class lists
    ("ins: circle, square; sem: wall, floor", None, "genseg", SAME),
    ("sem: sky, grass-merged", None, "genseg", SAME),
    ("ins: person, dog", None, "genseg", SAME),
    ("INS: star; SEM: wall", None, "genseg", SAME),
    ("star, circle, wall", None, "ovseg", SAME),
    ("star, circle and wall", None, "ovseg", "star, circle, wall"),
    ("cat, dog, traffic light, sky", None, "ovseg", SAME),
    ("segment cat, dog and sky", None, "ovseg", "cat, dog, sky"),
    ("segment all circles and squares", None, "ovseg", "circles, squares"),
    ("find every star", None, "ovseg", "star"),
    ("highlight all the rings", None, "ovseg", "rings"),
    # nothing typed, or a description with masks
    ("", None, "gcgseg", ""),
    ("   ", None, "gcgseg", ""),
    ("", [NEG], "gcgseg", ""),
    ("describe the image with masks", None, "gcgseg", ""),
    ("Can you give a brief description of the image with segmentation masks?", None, "gcgseg", ""),
    ("Describe this picture and segment what you mention", None, "gcgseg", ""),
    ("grounded caption", None, "gcgseg", ""),
    ("segment everything", None, "gcgseg", ""),
    ("segment the whole image", None, "gcgseg", ""),
    # segment / find / where is / show the X: referring, the phrase after the verb
    ("segment the red circle", None, "refseg", "the red circle"),
    ("Please segment the red circle.", None, "refseg", "the red circle"),
    ("Can you segment the large purple square in the image?", None, "refseg", "the large purple square"),
    ("find the cat", None, "refseg", "the cat"),
    ("where is the blue star?", None, "refseg", "the blue star"),
    ("Where's the ring", None, "refseg", "the ring"),
    ("show me where the star is", None, "refseg", "the star"),
    ("show me the green cross", None, "refseg", "the green cross"),
    ("highlight the small red circle, please", None, "refseg", "the small red circle"),
    ("point to the ring", None, "refseg", "the ring"),
    ("locate the woman in the space suit", None, "refseg", "the woman in the space suit"),
    # a phrase alone
    ("the red circle", None, "refseg", SAME),
    ("the large purple square", None, "refseg", SAME),
    ("the green star left of the ring", None, "refseg", SAME),
    ("the box between the circle and the star", None, "refseg", SAME),
    ("the red circle, left of the star", None, "refseg", SAME),
    ("cat", None, "refseg", SAME),
    # questions answered in words
    ("How many shapes are there?", None, "chat", SAME),
    ("how many circles are red", None, "chat", SAME),
    ("What colour is the triangle?", None, "chat", SAME),
    ("What color is the shape that looks like a plus sign?", None, "chat", SAME),
    ("Which colour is the star?", None, "chat", SAME),
    ("What shape is the red object?", None, "chat", SAME),
    ("Is there a ring?", None, "chat", SAME),
    ("Are there any stars?", None, "chat", SAME),
    ("What is this?", None, "chat", SAME),
    ("What is in the image?", None, "chat", SAME),
    ("What is on the plate next to the cup?", None, "chat", SAME),
    ("What can you see?", None, "chat", SAME),
    ("What could the cross be used for?", None, "chat", SAME),
    ("Why is the circle red?", None, "chat", SAME),
    ("Does the star touch the floor?", None, "chat", SAME),
    ("describe the image", None, "chat", SAME),
    ("count the shapes", None, "chat", SAME),
    ("tell me about the picture", None, "chat", SAME),
    ("Can you tell me how many shapes there are?", None, "chat", SAME),
    # questions whose answer is an object it does not name: reasoning
    ("Which object would roll away?", None, "reaseg", SAME),
    ("which shape has three corners", None, "reaseg", SAME),
    ("Which is the largest shape?", None, "reaseg", SAME),
    ("What could hold water?", None, "reaseg", SAME),
    ("What can I use to cut paper?", None, "reaseg", SAME),
    ("Where can I sit?", None, "reaseg", SAME),
    ("What carries people into space?", None, "reaseg", SAME),
    ("What object is round?", None, "reaseg", SAME),
    ("What is the object that can hold water?", None, "reaseg", SAME),
    ("What is used to cut paper?", None, "reaseg", SAME),
    ("Why would someone need an umbrella here?", None, "reaseg", SAME),
    # phrases that describe an object without naming it (the shapes world's reasoning requests)
    ("the shape with three corners", None, "reaseg", SAME),
    ("the shape that looks like a plus sign", None, "reaseg", SAME),
    ("the largest shape", None, "reaseg", SAME),
    ("the leftmost shape", None, "reaseg", SAME),
    ("something to sit on", None, "reaseg", SAME),
    ("find something to sit on", None, "reaseg", "something to sit on"),
    ("show me what could hold water", None, "reaseg", "what could hold water?"),
]


def test_the_table_is_large_and_reaches_every_task():
    assert len(TABLE) >= 40
    assert {task for _, _, task, _ in TABLE} == set(TASKS)


@pytest.mark.parametrize(("text", "prompts", "task", "reads"), TABLE, ids=[f"{t[2]}:{t[0]!r}" for t in TABLE])
def test_route(text, prompts, task, reads):
    chosen = route(text, prompts)
    assert chosen.task == task, chosen.reason
    assert chosen.text == (text if reads is SAME else reads)
    assert chosen.reason and chosen.title == TASKS[task].title


def test_prompts_may_be_json_and_negative_points_are_no_region():
    assert route("", json.dumps(TWO)).task == "vgdseg"
    assert route("", json.dumps([NEG, NEG])).task == "gcgseg"
    assert route("", "").task == "gcgseg"


def test_what_a_route_records():
    chosen = route("segment the red circle")
    assert chosen.info() == {"task": "refseg", "title": "Referring segmentation", "text": "the red circle",
                             "reason": "a “segment / find / where is …” request that names an object"}


def test_auto_is_no_registered_task():
    assert AUTO not in TASKS
    assert spec(AUTO) is AUTO_TASK and spec("refseg") is TASKS["refseg"]
    assert AUTO_TASK.takes_prompts and AUTO_TASK.text is not None and AUTO_TASK.class_list


# --- Auto through the Predictor, segment() and the CLI ----------------------------------------------

def test_predictor_runs_the_routed_task(predictor, scene):
    pred = predictor.predict(scene, AUTO, "segment the red box", force_answer="Sure, <SEG>.")
    assert pred.task == "refseg" and pred.phrases == ["the red box"] and len(pred.segments) == 1
    assert pred.info["ran_as"]["task"] == "refseg"
    assert pred.info["ran_as"]["title"] == "Referring segmentation"
    assert "ignored" not in pred.info  # the router's text is what the task reads
    assert pred.to_json()["task"] == "refseg" and pred.to_json()["info"]["ran_as"]["task"] == "refseg"

    pred = predictor.predict(scene, AUTO, "", [BOX, dict(P, prompt="2")], force_answer="Sure, <SEG>.")
    assert pred.task == "vgdseg" and pred.region_names == ["1", "2"]
    assert pred.info["ran_as"]["reason"] == "2 visual prompts: every object like them"


def test_an_explicit_task_records_no_route(predictor, scene):
    pred = predictor.predict(scene, "refseg", "segment the red box", force_answer="Sure, <SEG>.")
    assert "ran_as" not in pred.info and pred.phrases == ["segment the red box"]


def test_segment_routes_and_keeps_one_predictor_per_model(predictor, scene, ref_model, monkeypatch):
    import xsam_core
    from xsam_core.inference.predictor import Predictor

    pred = xsam_core.segment(scene, "ins: red box; sem: sky", predictor=predictor, force_answer="Sure, <SEG>.")
    assert pred.task == "genseg" and pred.info["ran_as"]["reason"] == "a class list in the ins:/sem: form"
    loads = []
    monkeypatch.setattr(xsam_core, "_PREDICTORS", {})
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, model=None, **kw: loads.append(model) or predictor))
    for _ in range(2):
        pred = xsam_core.segment(scene, "What is this?", model=ref_model)
    assert loads == [str(ref_model)] and pred.task == "chat"
    assert xsam_core.load_predictor(str(ref_model) + "/") is predictor and len(loads) == 1  # the same path


def test_importing_the_core_stays_light():
    code = "import sys, xsam_core; assert callable(xsam_core.segment); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_defaults_to_auto_and_says_what_ran(tmp_path, scene, ref_model, capsys):
    from xsam_core.cli import main

    scene.save(tmp_path / "scene.png")
    rc = main(["predict", "--image", str(tmp_path / "scene.png"), "--text", "where is the red box?",
               "--answer", "Sure, <SEG>.", "--model", str(ref_model), "--out", str(tmp_path / "out")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "scene.png: ran as: Referring segmentation — a “segment / find / where is …” request" in out
    assert json.loads((tmp_path / "out" / "scene.json").read_text())["task"] == "refseg"
