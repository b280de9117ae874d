"""Chat templates and chunk-wise tokenisation with image / region placeholders (spec §3)."""

from __future__ import annotations

import re

from ..modeling.config import IMAGE_TOKEN_INDEX, REGION_TOKEN_INDEX

_PLACEHOLDERS = {"<image>": IMAGE_TOKEN_INDEX, "<region>": REGION_TOKEN_INDEX}
_SPLIT = re.compile(r"(<image>|<region>)")


def apply_template(question: str, template: dict) -> str:
    return template["INSTRUCTION"].format(input=question)


def encode_prompt(tokenizer, text: str, bos_id: int | None = None) -> list[int]:
    """Split at the placeholders and tokenise each text chunk on its own, as the official encoder does."""
    ids = [bos_id] if bos_id is not None else []
    for chunk in _SPLIT.split(text):
        if chunk in _PLACEHOLDERS:
            ids.append(_PLACEHOLDERS[chunk])
        elif chunk:
            ids.extend(tokenizer.encode(chunk, add_special_tokens=False))
    return ids
