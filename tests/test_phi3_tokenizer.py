"""The Phi-3 tokenizer stand-in (tests/data/phi3-tokenizer, built by scripts/build_phi3_tokenizer.py from
Llama-2's vocabulary as the npm package llama-tokenizer-js 1.2.2 ships it): Llama-2 encodings, the ids
X-SAM expects, and the chunk-wise encoding of every task's prompt.

`load_tokenizer` (the project's) must encode exactly as the tokenizer.json as written
(`_as_written`, TokenizersBackend), which is how transformers 4.x's LlamaTokenizerFast, and so the
official X-SAM code, used Phi-3's tokenizer.json (legacy layout: every piece of text between special
tokens gets a "▁" prefix). Plain AutoTokenizer under transformers 5 does not: the folder's
`tokenizer_class: LlamaTokenizer` makes it rebuild the pre-tokenizer (Metaspace, prepend_scheme
"first") and drop that normalizer, which changed the prompt ids of six of the seven tasks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from xsam_core.inference.templates import apply_template, encode_prompt
from xsam_core.modeling.checkpoint import add_xsam_tokens, load_tokenizer
from xsam_core.modeling.config import IMAGE_TOKEN_INDEX, REGION_TOKEN_INDEX, TEMPLATES
from xsam_core.tasks import TASKS
from xsam_core.tasks.common import Choices

DATA = Path(__file__).parent / "data"
FOLDER = DATA / "phi3-tokenizer"
PHI3 = TEMPLATES["phi3_chat"]

# Llama-2 encodings (BOS added) as Llama-2 gives them; the build script checks the same list.
LLAMA2 = json.loads((DATA / "llama2-encodings.json").read_text())["encodings"]

PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
              "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
MARKERS = {"<|user|>": 32010, "<|end|>": 32007, "<|assistant|>": 32001, "<|system|>": 32006}
XSAM = {"<SEG>": 32011, "<p>": 32012, "</p>": 32013}

TEXTS = {"chat": "What is in this picture?", "genseg": "ins: red box, blue ball; sem: sky, grass-merged",
         "ovseg": "red box, blue ball", "refseg": "The RED box on the left",
         "reaseg": "Which object would roll away if it were pushed?", "gcgseg": "Describe the image briefly."}
REGIONS = {"intseg": 1, "vgdseg": 2}

# refseg, default choices (first template), written out and read against the vocabulary:
# <|user|> (its rstrip eats "\n") <image> | ▁ <0x0A> Please ▁identify ▁and ▁segment ▁the ▁ <p> ▁the ▁red ▁box
# ▁on ▁the ▁left </p> ▁ ▁in ▁this ▁image . <|end|> <|assistant|>
REFSEG_IDS = [32010, IMAGE_TOKEN_INDEX, 29871, 13, 12148, 12439, 322, 10768, 278, 29871, 32012, 278, 2654, 3800,
              373, 278, 2175, 32013, 29871, 297, 445, 1967, 29889, 32007, 32001]
# intseg: ... ▁regions : ▁ <p> <region> </p> ▁? ▁Please ▁output ▁the ▁corresponding ▁segment ation ▁mask .
INTSEG_IDS = [32010, IMAGE_TOKEN_INDEX, 29871, 13, 6028, 366, 10768, 278, 1967, 2729, 373, 278, 1494, 12786,
              29901, 29871, 32012, REGION_TOKEN_INDEX, 32013, 1577, 3529, 1962, 278, 6590, 10768, 362, 11105,
              29889, 32007, 32001]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(FOLDER)


@pytest.fixture(scope="module")
def as_written():
    from transformers import TokenizersBackend

    return add_xsam_tokens(TokenizersBackend.from_pretrained(str(FOLDER)))


def _prompt(name: str) -> str:
    question, _ = TASKS[name].prompt(TEXTS.get(name, "a thing"), REGIONS.get(name, 0), Choices())
    return apply_template(question, PHI3)


def test_folder_is_small_and_complete():
    names = {p.name for p in FOLDER.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= names
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 3 * 2**20


@pytest.mark.parametrize("text", list(LLAMA2))
def test_llama2_encodings(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert [tok.bos_token_id] + ids == LLAMA2[text]
    assert tok.decode(ids) == text


def test_vocabulary_and_ids(tok):
    vocab = tok.get_vocab()
    assert len(tok) == 32014
    assert [vocab[t] for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    assert [vocab[t] for t in PHI3_ADDED] == list(range(32000, 32011))
    assert vocab["▁Hello"] == 15043 and vocab["<0x0A>"] == 13 and vocab["▁"] == 29871
    for text, want in {**MARKERS, **XSAM}.items():
        assert tok.convert_tokens_to_ids(text) == want
        assert tok(text, add_special_tokens=False).input_ids == [want]  # the spec's id look-up
    assert tok.bos_token_id == 1 and tok.unk_token_id == 0
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"


def test_ids_fit_the_full_size_checkpoint(tok):
    """The released checkpoint's embedding / lm_head rows are len(tokenizer) (the 32064-row Phi-3 embedding
    shrunk by resize_token_embeddings), and the X-SAM token ids it records are ours."""
    keys = json.loads((DATA / "xsam-ref" / "xsam-phi3-full-keys.json").read_text())
    shapes = dict((k, s) for k, s in keys["keys"])
    rows = shapes["llm.model.embed_tokens.weight"][0]
    assert rows == shapes["llm.lm_head.weight"][0] == len(tok) == 32014
    assert keys["configs_used_assumed_from_model_cards"]["llm"]["vocab_size"] == 32064 > rows
    assert keys["special_token_ids"] == XSAM
    assert len(tok) - len(XSAM) == XSAM["<SEG>"]  # X-SAM appends after the 32011 Phi-3 tokens


def test_chat_markers_swallow_the_newline(tok):
    assert tok.encode("<|user|>\n", add_special_tokens=False) == [32010]
    assert tok.encode("<|end|>\n<|assistant|>\n", add_special_tokens=False) == [32007, 32001]
    # text after a special token gets the legacy "▁" prefix: "." after <SEG> is "▁." (869), not "." (29889)
    assert tok.encode("Sure, <SEG>.<|end|>", add_special_tokens=False)[-3:] == [32011, 869, 32007]


def _check_structure(tokenizer, name):
    text = _prompt(name)
    ids = encode_prompt(tokenizer, text)
    assert ids[:2] == [32010, IMAGE_TOKEN_INDEX] and ids[-2:] == [32007, 32001]
    assert ids.count(IMAGE_TOKEN_INDEX) == 1
    assert ids.count(REGION_TOKEN_INDEX) == REGIONS.get(name, 0) == text.count("<region>")
    assert ids.count(32012) == ids.count(32013) == text.count("<p>")
    for i in (i for i, x in enumerate(ids) if x == REGION_TOKEN_INDEX):
        assert ids[i - 1] == 32012 and ids[i + 1] == 32013  # <p><region></p>
    assert tokenizer.unk_token_id not in ids and all(x < len(tokenizer) for x in ids)
    assert ids.count(32010) == ids.count(32007) == ids.count(32001) == 1
    # the text between special tokens and placeholders round-trips
    specials = "|".join(re.escape(t) for t in [*MARKERS, *XSAM, "<image>", "<region>"])
    for piece in re.split(f"(?:{specials})\n?", text):
        if piece:
            assert tokenizer.decode(tokenizer.encode(piece, add_special_tokens=False)) == piece
    return ids


@pytest.mark.parametrize("name", list(TASKS))
def test_task_prompt_structure(tok, name):
    _check_structure(tok, name)


def test_explicit_ids_as_written(as_written):
    assert encode_prompt(as_written, _prompt("refseg")) == REFSEG_IDS
    assert encode_prompt(as_written, _prompt("intseg")) == INTSEG_IDS


@pytest.mark.parametrize("name", list(TASKS))
def test_load_tokenizer_encodes_as_tokenizer_json(tok, as_written, name):
    text = _prompt(name)
    assert encode_prompt(tok, text) == encode_prompt(as_written, text)


def test_bench_uses_the_stand_in(tmp_path, monkeypatch):
    from xsam_core.evaluation import bench

    assert bench.PHI3_TOKENIZER == FOLDER.resolve()
    real = bench.phi3_tokenizer()
    assert len(real) == 32014 and real.encode("Hello", add_special_tokens=False) == [15043]
    assert [real.convert_tokens_to_ids(t) for t in XSAM] == list(XSAM.values())
    monkeypatch.setattr(bench, "PHI3_TOKENIZER", tmp_path / "absent")  # an installed package: the old fillers
    assert len(bench.phi3_tokenizer()) == 32011  # (its trained vocabulary already holds <SEG>, <p>, </p>)
