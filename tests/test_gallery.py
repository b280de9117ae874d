"""The app's shapes gallery through the shipped embedded model, judged against the generator's own
ground truth: the example scenes are `python -m xsam_core shapes generate --n 8 --seed 123`, so their
annotations can be written again here. Every example must be right, as a person clicking it would judge:
the right thing segmented, every thing named right, the right count."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from app.examples import ASSETS, SHAPES
from xsam_core import shapes
from xsam_core.evaluation.metrics import iou
from xsam_core.inference.predictor import Predictor

GALLERY_SEED, GALLERY_SCENES = 123, 8
MASK_IOU = 0.8  # one named thing's mask
ON_THING = 0.8  # a segment counts as the thing that holds this share of its pixels


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    """{example image: [(name, size, colour, mask)]} for every thing and stuff region of its scene."""
    root = tmp_path_factory.mktemp("gallery")
    shapes.write_dataset(root, GALLERY_SCENES, seed=GALLERY_SEED)
    data = json.loads((root / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    scenes = {}
    for image in data["images"]:
        asset = f"examples/shapes-{image['id']}.png"
        if any(ex.image == asset for ex in SHAPES):
            drawn = np.asarray(Image.open(root / image["file_name"]).convert("RGB"))
            assert (drawn == np.asarray(Image.open(ASSETS / asset).convert("RGB"))).all(), asset
            scenes[asset] = [(names[a["category_id"]], a.get("size"), a.get("colour"),
                              mask_utils.decode(a["segmentation"]).astype(bool))
                             for a in data["annotations"] if a["image_id"] == image["id"]]
    return scenes


@pytest.fixture(scope="module")
def results():
    pred = Predictor.load(None)
    return {(ex.image, ex.task): pred.predict(Image.open(ex.path).convert("RGB"), ex.task, ex.text, ex.prompts or None)
            for ex in SHAPES}


def matches(segments, things):
    """For each segment, the index of the thing it lies on (ON_THING of its pixels), or None. A lenient
    match on purpose: the hidden star of shapes-6 is found and named, but its part seen through the ring's
    hole is given to the ring (IoU 0.38; the model card says so)."""
    out = []
    for seg in segments:
        on = [float((seg.mask & t[3]).sum() / max(seg.mask.sum(), 1)) for t in things]
        best = int(np.argmax(on))
        out.append(best if on[best] >= ON_THING else None)
    return out


def one_thing(things, name, size=None, colour=None):
    found = [t for t in things if t[0] == name and size in (None, t[1]) and colour in (None, t[2])]
    assert len(found) == 1
    return found[0][3]


@pytest.mark.parametrize("task, image, name, size, colour", [
    ("refseg", "examples/shapes-2.png", "square", "large", "purple"),
    ("reaseg", "examples/shapes-6.png", "cross", None, None),
    ("intseg", "examples/shapes-8.png", "circle", None, "red"),
])
def test_one_thing_examples_segment_it(truth, results, task, image, name, size, colour):
    segments = results[(image, task)].segments
    assert len(segments) == 1
    assert iou(segments[0].mask, one_thing(truth[image], name, size, colour)) >= MASK_IOU


def test_visual_grounding_finds_every_cross(truth, results):
    """The click is on the large red cross; "all objects like this one" includes the small blue one."""
    segments = results[("examples/shapes-8.png", "vgdseg")].segments
    crosses = [t for t in truth["examples/shapes-8.png"] if t[0] == "cross"]
    assert len(crosses) == 2
    assert sorted(matches(segments, crosses)) == [0, 1]


@pytest.mark.parametrize("task, image", [("genseg", "examples/shapes-6.png"), ("ovseg", "examples/shapes-7.png")])
def test_class_examples_find_and_label_every_thing(truth, results, task, image):
    """Each thing and stuff region exactly once, under its own class name (the hidden star of shapes-6
    included), and nothing else."""
    things, segments = truth[image], results[(image, task)].segments
    hit = matches(segments, things)
    assert sorted(i for i in hit if i is not None) == list(range(len(things))), [s.label for s in segments]
    assert all(seg.label == things[i][0] for seg, i in zip(segments, hit))


def test_grounded_caption_names_every_thing_right(truth, results):
    """Each phrase is "a <size> <colour> <shape>" of the thing its mask covers (or the wall / floor), and
    every thing of the scene is named once."""
    things, segments = truth["examples/shapes-7.png"], results[("examples/shapes-7.png", "gcgseg")].segments
    hit = matches(segments, things)
    assert sorted(i for i in hit if i is not None) == list(range(len(things))), [s.label for s in segments]
    for seg, i in zip(segments, hit):
        name, size, colour, _ = things[i]
        assert seg.label == (f"a {size} {colour} {name}" if size else f"the {name}")


def test_chat_counts_the_shapes(truth, results):
    count = sum(t[1] is not None for t in truth["examples/shapes-7.png"])
    assert count == 5
    assert results[("examples/shapes-7.png", "chat")].text.strip().rstrip(".") == "five"
