"""A clear "not there" (X-SAM issue 8: grounding cannot reject absent objects), on the embedded model.

A referring request whose best mask scores under the threshold draws no mask and says so; the official
output stays in the Prediction, flagged. Generic segmentation lists the classes it found nothing for.
"""

import re

import numpy as np
import pytest
import torch

from xsam_core import shapes
from xsam_core.evaluation.absent import rates
from xsam_core.inference.predictor import Predictor
from xsam_core.inference.results import Prediction
from xsam_core.tasks.common import DecodeContext
from xsam_core.tasks.refseg import best_query_masks


@pytest.fixture(scope="module")
def embedded():
    return Predictor.load(None)


def test_absent_objects_are_rejected_and_present_ones_kept(embedded):
    """Measured on these 20 scenes with the shipped checkpoint (run 63): 70 % of absent objects rejected,
    none of the present ones (200 other scenes: 69 %, 3.5 %). The checkpoint before it (a quarter of it
    run 44, trained on absent objects): 70 % and none (60 scenes: 58 %, none; 200 other scenes: 64 %,
    1.5 %); runs 41 and 42 averaged: 57 % and none on 60, 59.5 % and 1.5 % on 200."""
    result = rates(embedded, n=20, seed=4242)
    assert result["absent_rejected"] >= 0.65, result
    assert result["present_rejected"] <= 0.05, result


def test_a_rejected_match_is_flagged_not_drawn(embedded):
    rng = np.random.default_rng(4242)
    for _ in range(20):
        scene = shapes.generate_scene(rng)
        pred = embedded.predict(scene.image, "refseg", shapes.absent_refseg(scene, rng)["text"])
        if "no_match" in pred.info:
            break
    else:
        pytest.fail("no absent object was rejected in 20 scenes")
    best = pred.rejected[0].score
    assert pred.segments == [] and len(pred.rejected) == 1 and best < 0.5
    assert re.fullmatch(r"no match above 0\.50 \(best 0\.\d\d\)", pred.info["no_match"])
    assert f"{best:.2f}" in pred.info["no_match"]
    assert pred.official_segments == pred.rejected  # the official output is kept, flagged
    assert np.array_equal(pred.label_map == 1, pred.rejected[0].mask)
    result = pred.to_json()
    assert result["annotations"] == [] and len(result["rejected"]) == 1
    # the same request at a threshold under its score shows the mask
    shown = embedded.predict(scene.image, "refseg", pred.phrases[0], threshold=best / 2)
    assert len(shown.segments) == 1 and shown.rejected == [] and "no_match" not in shown.info


def test_generic_segmentation_lists_classes_it_found_nothing_for(embedded):
    rng = np.random.default_rng(7)
    scene = shapes.generate_scene(rng)
    present = sorted({t.shape for t in scene.objects})
    missing = [s for s in shapes.SHAPES if s not in present]
    pred = embedded.predict(scene.image, "genseg", f"ins: {', '.join(present + missing)}; sem: wall, floor")
    found = {s.label for s in pred.segments}
    asked = present + missing + ["wall", "floor"]
    assert pred.info["not_found"] == [c for c in asked if c not in found]
    assert len(set(missing) & set(pred.info["not_found"])) >= 2  # the model finds no star and no triangle here


def test_words_outside_the_vocabulary_are_named(embedded):
    """A photo of a cat with "the cat": the result says the model does not know "cat", what it knows and how
    to load the released model, labels the mask with the typed word, and says that the mask is empty."""
    pred = embedded.predict("assets/photos/chelsea.png", "refseg", "the cat")
    assert pred.info["unknown_words"] == ["cat"]
    assert "does not know 'cat'" in pred.info["note_words"] and "circle" in pred.info["note_words"]
    assert "--model hao9610/X-SAM" in pred.info["note_words"]
    assert pred.phrases == ["the cat"] and all("<unk>" not in s.label for s in pred.official_segments)
    if pred.segments and not pred.segments[0].mask.any():
        assert "covers no pixel" in pred.info["empty_masks"]
    known = embedded.predict("assets/examples/shapes-2.png", "refseg", "the large purple square")
    assert "unknown_words" not in known.info and "note_words" not in known.info


def test_a_chat_question_outside_the_trained_forms_is_flagged(embedded):
    """The embedded model learnt three chat questions; asked another ("How many stars are there?", which
    it answers with a colour), the result says which questions it knows and how to load the released
    model, and the status line shows it. A trained form gets no such note."""
    from app.views import notes

    pred = embedded.predict("assets/examples/shapes-7.png", "chat", "How many stars are there?")
    assert "three questions only" in pred.info["note_question"]
    assert all(form in pred.info["note_question"] for form in shapes.CHAT_FORMS)
    assert "--model hao9610/X-SAM" in pred.info["note_question"] and pred.info["note_question"] in notes(pred)
    known = embedded.predict("assets/examples/shapes-7.png", "chat", "How many shapes are there?")
    assert "note_question" not in known.info and known.text in shapes.NUMBER_WORDS


def test_the_api_says_no_match_in_its_answer(embedded):
    """The endpoint function behind /refseg (the HTTP call runs it as is), asked for an object the image
    lacks (shapes-8 holds a red circle, a purple ring, a red and a blue cross): the answer says "no match"."""
    from app import api
    from app.service import Service

    refseg = api.endpoint(Service(embedded), "refseg")
    overlay, answer, result = refseg("assets/examples/shapes-8.png", "the yellow triangle", "[]", 0.5)
    assert result["annotations"] == [] and len(result["rejected"]) == 1
    assert f"⚠ {result['info']['no_match']}: no mask is drawn" in answer and answer.startswith(result["text"])


def test_a_caption_phrase_painted_over_says_by_which(embedded):
    """Two caption phrases that pick the same query (a caption that repeats a phrase): the official map
    paints the later one on top, so the earlier shows no pixel; the result names the phrase it lies
    under instead of calling the mask empty. A mask that is empty in itself is still called so."""
    class_logits = torch.tensor([[[5.0, 4.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]]])  # query 0 wins phrases 1, 2
    lowres = torch.full((1, 2, 8, 8), -10.0)
    lowres[0, 0, 2:6, 2:6] = 10.0  # query 1 (phrase 3's) covers nothing
    labels = ["a large blue circle", "a large blue circle", "a small red star"]
    ctx = DecodeContext(class_logits, lowres, 8, (8, 8), (8, 8), 0.5, labels)
    out = best_query_masks(ctx, paint=True)
    assert [int(s.mask.sum()) for s in out.segments] == [0, 16, 0]
    assert out.extra["hidden_under"] == {0: [1]}

    pred = Prediction("gcgseg", "", segments=out.segments, info=dict(out.extra))
    embedded._explain(pred, "")
    assert pred.info["empty_masks"] == (
        "the mask of 'a large blue circle' lies under that of the later 'a large blue circle'; "
        "the mask of 'a small red star' covers no pixel of the image")
    assert "hidden_under" not in pred.info


def test_an_empty_chat_answer_says_so(embedded, monkeypatch):
    """A reply that ends at its first token (run 36, an unshipped checkpoint, did so on a tones-look
    scene) is a blank answer: the result says the model gave none, in the app and in the API text."""
    from app import api
    from app.service import Service
    from app.views import notes

    monkeypatch.setattr(embedded, "_strip_stops", lambda text: "")
    pred = embedded.predict("assets/examples/shapes-7.png", "chat", "How many shapes are there?")
    assert pred.text == "" and "gave no answer" in pred.info["empty_answer"]
    assert pred.info["empty_answer"] in notes(pred)
    chat = api.endpoint(Service(embedded), "chat")
    answer = chat("assets/examples/shapes-7.png", "How many shapes are there?", "[]", 0.5)[1]
    assert answer == f"⚠ {pred.info['empty_answer']}"
    monkeypatch.undo()
    real = embedded.predict("assets/examples/shapes-7.png", "chat", "How many shapes are there?")
    assert real.text and "empty_answer" not in real.info
