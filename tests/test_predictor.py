"""The Predictor end to end on the reference fixture.

Its weights are random, so it never says <SEG> by itself: segmentation requests force an answer
(teacher forcing, as the official evaluation does), with the fixture cases' answers.
"""

import io
import json
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from xsam_core.inference.predictor import Predictor
from xsam_core.inference.processing import ImageError, load_image
from xsam_core.inference.render import overlay
from xsam_core.inference.results import STAGES
from xsam_core.inference.visual_prompts import VisualPromptError
from xsam_core.masks import mask_to_rle
from xsam_core.tasks import PromptError

# pycocotools' decode trips a numpy-2 deprecation inside its own code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

GCG = "<p>A red box</p> is next to <p>a blue ball</p>. And <SEG>."
BOX = np.zeros((72, 96), bool)
BOX[20:50, 10:40] = True
TWO_REGIONS = [{"kind": "box", "box": [5, 5, 30, 30], "prompt": "A"},
               {"kind": "point", "x": 70, "y": 50, "prompt": "B"}]
QUESTION = "Which object would roll away?"

# name: (task, text, prompts, forced answer, expected labels (None: the label of class `category_id`
# in CLASSES, i.e. the request's classes or regions)). Every task but chat must return masks.
CASES = {
    "chat": ("chat", "What is in this picture?", None, "A red box and a blue ball lie on green grass.", []),
    "panoptic": ("genseg", "ins: red box, blue ball; sem: sky, grass-merged", None, "Sure, <SEG>.", None),
    "semantic": ("genseg", "sem: sky, grass-merged, wall-other, tree", None, "It is <SEG>.", None),
    "instance": ("genseg", "ins: red box, blue ball, person", None, "<SEG>.", None),
    # (with "Sure, <SEG>." the random weights pass no query through the panoptic overlap test)
    "ovseg": ("ovseg", "red box, blue ball, sky", None, "It is <SEG>.", None),
    "refseg": ("refseg", "The RED box on the left", None, "Sure, <SEG>.", ["the red box on the left"]),
    "reaseg": ("reaseg", QUESTION, None, "Sure, <SEG>.", [QUESTION]),
    "gcgseg": ("gcgseg", "", None, GCG, ["A red box", "a blue ball"]),
    "intseg-point": ("intseg", "", [{"kind": "point", "x": 40, "y": 30}], "Sure, it is <SEG>.", ["prompt 1"]),
    "intseg-box": ("intseg", "", [{"kind": "box", "box": [10, 20, 40, 50]}], "Sure, <SEG>.", ["prompt 1"]),
    "intseg-scribble": ("intseg", "", [{"kind": "scribble", "points": [[10, 10], [30, 20], [50, 25]]}],
                        "Sure, <SEG>.", ["prompt 1"]),
    "intseg-mask": ("intseg", "", [{"kind": "mask", "rle": mask_to_rle(BOX)}], "Sure, <SEG>.", ["prompt 1"]),
    "vgdseg": ("vgdseg", "", TWO_REGIONS, "Sure, the segmentation result is <SEG>.", None),
}
MODES = {"panoptic": "panoptic", "semantic": "semantic", "instance": "instance", "ovseg": "panoptic"}
# class index → label: genseg lists things then stuff (no seed: no shuffle), vgdseg its regions
CLASSES = {"panoptic": ["red box", "blue ball", "sky", "grass-merged"],
           "semantic": ["sky", "grass-merged", "wall-other", "tree"],
           "instance": ["red box", "blue ball", "person"], "ovseg": ["red box", "blue ball", "sky"],
           "vgdseg": ["prompt A", "prompt B"]}
# The official label map of each kind: (background, value written for segment k); later segments on top.
LABEL_MAPS = {
    "panoptic": (0, lambda k, seg: k + 1),  # segment ids from 1, 0 = void
    "semantic": (-1, lambda k, seg: seg.category_id),  # every pixel has a class: no -1 may remain
    "instance": (-1, lambda k, seg: k),
    "vgdseg": (255, lambda k, seg: k),
    "refseg": (255, lambda k, seg: 1),
    "reaseg": (255, lambda k, seg: 1),
    "intseg": (255, lambda k, seg: 1),
    "gcgseg": (255, lambda k, seg: seg.category_id + 1),
}

def unique_image(seed: int, h: int = 24, w: int = 32) -> Image.Image:
    """An image no other test uses, so its first request is a cache miss."""
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8))


def check_prediction(pred, h: int, w: int) -> None:
    """Masks at the image size, scores in [0, 1]; label map, labels and exports consistent with the
    segments."""
    assert pred.image_size == (h, w)
    assert len(pred.labels) == len(pred.scores) == len(pred.masks)
    for mask in pred.masks:
        assert mask.shape == (h, w) and mask.dtype == bool
    assert all(0 <= s <= 1 for s in pred.scores), pred.scores
    if pred.task == "chat":
        assert pred.label_map is None and not pred.segments
    else:
        background, value = LABEL_MAPS[pred.mode or pred.task]
        painted = np.full((h, w), background)
        for k, seg in enumerate(pred.segments):
            painted[seg.mask] = value(k, seg)
        assert np.array_equal(pred.label_map, painted), f"{pred.task} segments disagree with the label map"
        if pred.mode != "instance" and pred.task != "vgdseg":  # only instances may overlap
            assert (np.sum(pred.masks, axis=0) <= 1).all(), f"{pred.task} segments overlap"
    result = json.loads(json.dumps(pred.to_json()))
    for ann, seg in zip(result["annotations"], pred.segments, strict=True):
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        assert np.array_equal(mask_utils.decode(rle).astype(bool), seg.mask)
        assert ann["label"] == seg.label and ann["area"] == int(seg.mask.sum())
        assert ann["bbox"] == [int(v) for v in mask_utils.toBbox(rle)]
    with zipfile.ZipFile(io.BytesIO(pred.masks_zip())) as zf:
        pngs = sorted(n for n in zf.namelist() if n.endswith(".png"))
        assert len(pngs) == len(pred.segments) and "prediction.json" in zf.namelist()
        for name in pngs:
            assert Image.open(io.BytesIO(zf.read(name))).size == (w, h)


@pytest.mark.parametrize("name", CASES)
def test_every_task(predictor, scene, name):
    task, text, prompts, answer, labels = CASES[name]
    pred = predictor.predict(scene, task, text, prompts, force_answer=answer)
    check_prediction(pred, 72, 96)
    assert pred.task == task and pred.mode == MODES.get(name)
    if task != "chat":
        assert pred.segments, f"{name}: no masks ({pred.info.get('note', 'no note')})"
    if labels is None:
        assert pred.labels == [CLASSES[name][s.category_id] for s in pred.segments]
    else:
        assert pred.labels == labels
    if task == "gcgseg":
        assert pred.phrases == labels and [s.category_id for s in pred.segments] == [0, 1]
    if task in ("intseg", "vgdseg"):
        assert [m.shape for m in pred.regions] == [(72, 96)] * len(pred.region_names)
    if task == "chat":
        assert pred.text == answer


@pytest.mark.parametrize("task, text, answer, note", [
    ("refseg", "the red box", "Sure.", "no <SEG> token"),
    ("genseg", "ins: red box, blue ball", "It is.", "no <SEG> token"),
    ("gcgseg", "", "A red box next to a blue ball. <SEG>.", "no phrase"),  # gcgseg's phrases come from the answer
    ("refseg", "the red box", "<SEG> and <SEG>.", "2 <SEG> tokens for 1 phrases"),
    ("genseg", "ins: red box, blue ball", "<SEG> and <SEG>.", "2 <SEG> tokens in the answer (need one)"),
])
def test_an_answer_without_one_usable_seg_gives_no_masks_and_says_why(predictor, scene, task, text, answer, note):
    pred = predictor.predict(scene, task, text, force_answer=answer)
    assert not pred.segments and pred.label_map is None
    assert note in pred.info.get("note", ""), pred.info


def test_second_request_hits_the_image_cache(predictor):
    img = unique_image(1)
    first = predictor.predict(img, "refseg", "the box", force_answer="Sure, <SEG>.")
    second = predictor.predict(img, "refseg", "the box", force_answer="Sure, <SEG>.")
    assert not first.info["image_cached"] and {"siglip", "sam"} <= first.timings.keys()
    assert second.info["image_cached"] and not {"siglip", "sam"} & second.timings.keys()
    assert second.text == first.text and second.scores == first.scores
    assert all(np.array_equal(a, b) for a, b in zip(first.masks, second.masks, strict=True))


def test_on_stage_hears_each_stage_that_runs_in_order(predictor):
    """The page's progress bar follows these calls: every timed stage is announced as it starts, in the
    order of STAGES, and a cached image announces no encoder."""
    img = unique_image(4)
    for cached in (False, True):
        heard = []
        pred = predictor.predict(img, "intseg", prompts=[{"kind": "point", "x": 20, "y": 20}],
                                 force_answer="Sure, <SEG>.", on_stage=heard.append)
        order = [s for i, s in enumerate(heard) if i == 0 or heard[i - 1] != s]  # prefill runs in two parts
        assert order == [s for s in STAGES if s in pred.timings] and set(heard) == pred.timings.keys()
        assert pred.info["image_cached"] is cached and ("sam" in heard) is not cached
        assert {"sampler", "prefill", "decode", "mask_decoder", "postprocess"} <= set(heard)


def same_output(a, b) -> bool:
    return (a.text == b.text and a.raw_text == b.raw_text and np.allclose(a.scores, b.scores)
            and len(a.masks) == len(b.masks) and all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks)))


def test_prefix_cache_gives_what_a_fresh_predictor_gives(predictor):
    """Requests share the cached prompt prefix (KV of template head + image tokens); a request must
    never leak into it: repeats are identical, and another question equals an uncached run."""
    img = unique_image(2)
    cached = Predictor(predictor.model, predictor.tokenizer)
    chat_a = cached.predict(img, "chat", "What is in this picture?", max_new_tokens=12)
    seg_a = cached.predict(img, "refseg", "the red box", force_answer="Sure, <SEG>.")
    chat_b = cached.predict(img, "chat", "Which colour is the ball?", max_new_tokens=12)
    seg_b = cached.predict(img, "gcgseg", force_answer=GCG)
    assert chat_b.info["image_cached"] and seg_b.info["image_cached"]
    assert same_output(cached.predict(img, "chat", "What is in this picture?", max_new_tokens=12), chat_a)
    assert same_output(cached.predict(img, "refseg", "the red box", force_answer="Sure, <SEG>."), seg_a)
    assert chat_a.raw_text and seg_a.masks  # non-trivial outputs were compared
    for request, expected in (((img, "chat", "Which colour is the ball?"), chat_b), ((img, "gcgseg"), seg_b)):
        fresh = Predictor(predictor.model, predictor.tokenizer)
        kw = {"max_new_tokens": 12} if request[1] == "chat" else {"force_answer": GCG}
        assert same_output(fresh.predict(*request, **kw), expected)


def test_negative_point_makes_intseg_pick_another_mask(predictor, scene):
    scribble = {"kind": "scribble", "points": [[10, 10], [30, 20], [50, 25]]}
    best = predictor.predict(scene, "intseg", prompts=[scribble], force_answer="Sure, <SEG>.").masks[0]
    ys, xs = np.nonzero(best)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    negative = {"kind": "point", "x": x, "y": y, "negative": True}
    pred = predictor.predict(scene, "intseg", prompts=[scribble, negative], force_answer="Sure, <SEG>.")
    assert pred.info["negative_points"] == [(x, y)]
    assert len(pred.masks) == 1 and not pred.masks[0][y, x] and not np.array_equal(pred.masks[0], best)


# --- image inputs ----------------------------------------------------------------------------------

def image_in_mode(mode: str, h: int = 12, w: int = 16) -> Image.Image:
    ramp = np.arange(h * w).reshape(h, w)
    if mode == "I;16":
        return Image.fromarray((ramp * 300).astype(np.uint16))
    if mode == "I":
        return Image.fromarray((ramp * 70000 - 10**6).astype(np.int32))
    if mode == "F":
        return Image.fromarray((ramp / 7.0 - 3).astype(np.float32))
    if mode == "P+transparency":
        img = Image.fromarray((ramp % 4).astype(np.uint8), "P")
        img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
        img.info["transparency"] = 3
        return img
    rgba = Image.fromarray(np.stack([ramp % 256, ramp % 7 * 30, ramp % 5 * 50, (ramp % 2) * 255], -1).astype(np.uint8))
    return rgba if mode == "RGBA" else rgba.convert(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "P+transparency", "I;16", "I", "F", "CMYK", "RGB"])
def test_every_image_mode(predictor, mode):
    img = image_in_mode(mode)
    assert img.mode == mode.split("+")[0]
    rgb = load_image(img)
    assert rgb.mode == "RGB" and rgb.size == (16, 12)
    pred = predictor.predict(img, "refseg", "the thing", force_answer="Sure, <SEG>.")
    check_prediction(pred, 12, 16)
    out = overlay(img, pred)
    assert out.mode == "RGB" and out.size == (16, 12)


def test_transparent_pixels_become_white():
    img = image_in_mode("RGBA")
    rgb = np.asarray(load_image(img))
    assert (rgb[np.asarray(img)[..., 3] == 0] == 255).all()


def test_exif_orientation_is_applied(predictor):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    buf = io.BytesIO()
    unique_image(3, h=20, w=40).save(buf, "JPEG", exif=exif)
    pred = predictor.predict(buf.getvalue(), "refseg", "the thing", force_answer="Sure, <SEG>.")
    check_prediction(pred, 40, 20)


def png_header(w: int, h: int) -> bytes:
    """A PNG that only claims its size (decoding would fail): PIL reads the size lazily."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_pixel_limits():
    with pytest.raises(ImageError, match="limit is"):
        load_image(Image.new("RGB", (20, 20)), max_pixels=100)
    assert load_image(Image.new("RGB", (10, 10)), max_pixels=100).size == (10, 10)


@pytest.mark.parametrize("w,h,message", [(8000, 6000, "8000×6000 = 48 MP; the limit is 40 MP"),
                                         (50000, 50000, "cannot read the image.*pixels")])
def test_huge_image_is_refused_from_its_header(predictor, w, h, message):
    """Refused on the size the header claims: decoding would fail with another message (there are no
    pixel data). How fast is measured by the benchmark, not asserted here (bench.refusal_and_render_timings)."""
    with pytest.raises(ImageError, match=message):
        predictor.predict(png_header(w, h), "refseg", "the thing", force_answer="Sure, <SEG>.")


def test_bad_images(predictor, tmp_path, scene):
    buf = io.BytesIO()
    scene.save(buf, "PNG")
    (tmp_path / "notes.png").write_text("just text")
    bad = {
        "zero width": (Image.new("RGB", (0, 5)), "empty"),
        "zero height array": (np.zeros((0, 4, 3), np.uint8), "empty"),
        "corrupt bytes": (b"\x89PNG\r\n\x1a\n not a png", "cannot read the image"),
        "truncated png": (buf.getvalue()[: len(buf.getvalue()) // 2], "cannot read the image"),
        "non-image file": (tmp_path / "notes.png", "cannot read the image"),
        "missing file": (tmp_path / "missing.png", "missing.png"),
        "not an image type": (42, "unsupported image input of type int"),
    }
    for name, (src, message) in bad.items():
        with pytest.raises(ImageError, match=message):
            predictor.predict(src, "refseg", "the thing", force_answer="Sure, <SEG>.")


# --- prompts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompts,error,message", [
    ([{"kind": "point", "x": 500, "y": 3}], VisualPromptError, "outside the 96×72 image"),
    ([{"kind": "point", "x": 5, "y": -1}], VisualPromptError, "outside"),
    ([{"kind": "box", "box": [100, 80, 200, 90]}], VisualPromptError, "outside"),
    ([{"kind": "scribble", "points": [[-5, -5], [-1, -9]]}], VisualPromptError, "entirely outside"),
    ([{"kind": "point", "x": 5, "y": 5}, {"kind": "point", "x": 500, "y": 5, "negative": True}], VisualPromptError,
     "negative point .* outside"),
    ("", VisualPromptError, "needs a visual prompt"),
    ("[]", VisualPromptError, "needs a visual prompt"),
    ([{"kind": "point", "x": 5, "y": 5, "negative": True}], VisualPromptError, "needs a visual prompt"),
    ("[{", VisualPromptError, "not valid JSON"),
    ('"a point"', VisualPromptError, "JSON list of objects"),
    ([{"kind": "blob"}], VisualPromptError, "unknown prompt kind 'blob'"),
    ([{"kind": "point", "x": "left", "y": 3}], VisualPromptError, r"expected \[x, y\] numbers"),
    ([{"kind": "mask", "rle": {"size": [10, 10], "counts": "0"}}], VisualPromptError, "does not match"),
    (TWO_REGIONS, PromptError, "exactly one visual prompt .got 2"),
])
def test_bad_intseg_prompts(predictor, scene, prompts, error, message):
    with pytest.raises(error, match=message):
        predictor.predict(scene, "intseg", prompts=prompts, force_answer="Sure, <SEG>.")


def test_vgdseg_needs_a_region(predictor, scene):
    with pytest.raises(VisualPromptError, match="needs a visual prompt"):
        predictor.predict(scene, "vgdseg", prompts=[], force_answer="Sure, <SEG>.")


@pytest.mark.parametrize("task", ["chat", "refseg", "reaseg", "genseg", "ovseg"])
@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_refused(predictor, scene, task, text):
    with pytest.raises(PromptError):
        predictor.predict(scene, task, text, force_answer="Sure, <SEG>.")


def test_unknown_task(predictor, scene):
    with pytest.raises(PromptError, match="unknown task 'segment'"):
        predictor.predict(scene, "segment", "the box")


def test_text_longer_than_the_context_is_refused(predictor, scene):
    classes = ", ".join(f"class{i}" for i in range(3000))
    with pytest.raises(PromptError, match="at most 4096"):
        predictor.predict(scene, "genseg", f"ins: {classes}", force_answer="Sure, <SEG>.")
