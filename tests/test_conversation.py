"""Multi-turn chat in the core: earlier turns enter the prompt as the template writes a conversation."""

import pytest

from xsam_core.errors import PromptError
from xsam_core.inference.templates import apply_template, conversation, parse_history
from xsam_core.modeling.config import TEMPLATES

PHI3 = TEMPLATES["phi3_chat"]
FIRST = {"question": "Please segment <p>the red box</p> in this image.", "answer": "Sure, <SEG>."}


def test_one_turn_is_the_single_turn_prompt():
    assert conversation("<image>\nWhat is this?", [], PHI3) == apply_template("<image>\nWhat is this?", PHI3)


@pytest.mark.parametrize("name", TEMPLATES)
def test_turns_follow_the_template(name):
    t = TEMPLATES[name]
    second = {"question": "What colour is it?", "answer": "red"}
    text = conversation("<image>\nHow many boxes?", [FIRST, second], t)
    assert text == (t["INSTRUCTION"].format(input="<image>\n" + FIRST["question"]) + FIRST["answer"] + t["SUFFIX"]
                    + "\n" + t["INSTRUCTION"].format(input=second["question"]) + "red" + t["SUFFIX"] + "\n"
                    + t["INSTRUCTION"].format(input="How many boxes?"))
    assert text.count("<image>") == 1


def test_history_is_validated():
    assert parse_history(None) == [] and parse_history([]) == []
    assert parse_history([{"question": "<image>\nhi <region>", "answer": "yes"}]) == [
        {"question": "hi", "answer": "yes"}]  # only this turn holds the image and the visual prompts
    too_long = [{"question": "q" * 5000, "answer": ""}]
    for bad in ("text", [{"question": "q"}], [{"question": 1, "answer": "a"}], too_long):
        with pytest.raises(PromptError, match="history"):
            parse_history(bad)


def test_a_follow_up_turn_conditions_only_on_its_own_phrase(predictor, scene):
    first = predictor.predict(scene, "refseg", "the red box", force_answer="Sure, <SEG>.")
    assert first.info["turn"] == {"question": "Please identify and segment the <p>the red box</p> in this image.",
                                  "answer": first.raw_text}
    assert "<SEG>" in first.raw_text
    follow = predictor.predict(scene, "refseg", "the blue ball", history=[first.info["turn"]],
                               force_answer="Sure, <SEG>.")
    assert follow.phrases == ["the blue ball"] and [s.label for s in follow.official_segments] == ["the blue ball"]
    assert follow.info["history"] == {"used": 1, "dropped": 0} and follow.info["image_cached"]
    assert follow.info["prompt"].count("<|user|>") == 2 and "the red box" in follow.info["prompt"]
    alone = predictor.predict(scene, "refseg", "the blue ball", force_answer="Sure, <SEG>.")
    assert "history" not in alone.info and alone.info["prompt"].count("<|user|>") == 1


def test_oldest_turns_are_dropped_to_fit_the_context(predictor, scene):
    turn = {"question": "Describe " + "the red box and the blue ball " * 20, "answer": "A red box."}
    pred = predictor.predict(scene, "chat", "What is in this picture?", history=[turn] * 60, max_new_tokens=2)
    used, dropped = pred.info["history"]["used"], pred.info["history"]["dropped"]
    assert used + dropped == 60 and dropped > 0 and used > 0
    assert len(predictor.tokenizer.encode(pred.info["prompt"])) <= predictor.config.max_length
