"""Chat templates and chunk-wise tokenisation with image / region placeholders (spec §3)."""

from __future__ import annotations

import json
import re

from ..errors import PromptError
from ..modeling.config import IMAGE_TOKEN_INDEX, REGION_TOKEN_INDEX, TURN_SEP

_PLACEHOLDERS = {"<image>": IMAGE_TOKEN_INDEX, "<region>": REGION_TOKEN_INDEX}
_SPLIT = re.compile(r"(<image>|<region>)")


def apply_template(question: str, template: dict) -> str:
    return template["INSTRUCTION"].format(input=question)


IMAGE_TURN = "<image>\n"
MAX_TURN_CHARS = 4000


def parse_history(history) -> list[dict]:
    """Earlier turns of a conversation: a list of {"question": str, "answer": str} (what a Prediction's
    `info["turn"]` holds), or None. Placeholders in them are dropped: only this turn has the image and
    visual prompts."""
    if isinstance(history, str):
        try:
            history = json.loads(history) if history.strip() else []
        except json.JSONDecodeError as e:
            raise PromptError(f"the history is not valid JSON: {e}") from e
    if not history:
        return []
    if not isinstance(history, list) or not all(isinstance(t, dict) for t in history):
        raise PromptError('the history is a list of {"question": ..., "answer": ...} objects')
    turns = []
    for t in history:
        q, a = t.get("question"), t.get("answer")
        if not isinstance(q, str) or not isinstance(a, str) or len(q) + len(a) > MAX_TURN_CHARS:
            raise PromptError(f'each history turn needs a "question" and an "answer" text (at most '
                              f"{MAX_TURN_CHARS} characters together)")
        turns.append({"question": _SPLIT.sub("", q).strip(), "answer": _SPLIT.sub("", a).strip()})
    return turns


def conversation(question: str, history: list[dict], template: dict) -> str:
    """Earlier turns, then this one, as the template writes a conversation (xtuner's multi-turn encoding:
    each answer followed by SUFFIX and SEP); the image placeholder stays in the first turn.

    `question` is a task's human turn ("<image>\n…"); `history` holds {"question", "answer"} dicts of the
    earlier turns (questions without the image placeholder, answers as generated)."""
    if not history:
        return apply_template(question, template)
    current = question[len(IMAGE_TURN):] if question.startswith(IMAGE_TURN) else question
    questions = [IMAGE_TURN + history[0]["question"]] + [t["question"] for t in history[1:]] + [current]
    text = ""
    for q, turn in zip(questions, history + [None]):
        text += apply_template(q, template)
        if turn is not None:
            text += turn["answer"] + template["SUFFIX"] + TURN_SEP
    return text


def encode_prompt(tokenizer, text: str, bos_id: int | None = None) -> list[int]:
    """Split at the placeholders and tokenise each text chunk on its own, as the official encoder does."""
    ids = [bos_id] if bos_id is not None else []
    for chunk in _SPLIT.split(text):
        if chunk in _PLACEHOLDERS:
            ids.append(_PLACEHOLDERS[chunk])
        elif chunk:
            ids.extend(tokenizer.encode(chunk, add_special_tokens=False))
    return ids
