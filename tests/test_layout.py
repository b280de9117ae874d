"""The full-size models built from the presets have exactly the released checkpoints' key trees.

Built on the meta device (no memory); the reference key lists come from the official code.
"""

import json
from pathlib import Path

import pytest
import torch

from xsam_core.modeling.checkpoint import preset_for_state_dict, to_archive_keys
from xsam_core.modeling.config import preset
from xsam_core.modeling.model import XSamModel

FIXTURE = Path(__file__).resolve().parent / "data" / "xsam-ref"  # = conftest.REF_MODEL
VARIANTS = ["xsam-phi3", "xsam-qwen3-1.7b", "xsam-qwen3-4b"]

pytestmark = pytest.mark.usefixtures("ref_model")  # fails, never skips, without the fixture


def reference(name: str) -> dict:
    return json.loads((FIXTURE / f"{name}-full-keys.json").read_text())


@pytest.fixture(scope="module", params=VARIANTS)
def built(request):
    with torch.device("meta"):
        model = XSamModel(preset(request.param))
    return request.param, model, reference(request.param)


def test_keys_and_shapes_match_the_release(built):
    _, model, ref = built
    ours = {k: list(v.shape) for k, v in to_archive_keys(model.state_dict()).items()}
    theirs = dict(ref["keys"])
    assert sorted(set(ours) - set(theirs)) == [], "keys the release does not have"
    assert sorted(set(theirs) - set(ours)) == [], "keys of the release we do not build"
    assert {k: s for k, s in ours.items() if s != theirs[k]} == {}, "mis-shaped keys"
    assert len(ours) == ref["num_tensors"]


def test_unique_parameter_count_and_ties(built):
    _, model, ref = built
    params = model.state_dict(keep_vars=True)
    unique = {id(t): t for t in params.values()}  # tied parameters are one object (meta: no data_ptr)
    assert sum(t.numel() for t in unique.values()) == ref["num_elements_unique"]
    tied = sorted(sorted(to_archive_keys({a: 0, b: 0})) for a, b in _tied_pairs(params))
    assert tied == sorted(sorted(pair) for pair in ref["tied_parameters"])


def _tied_pairs(params: dict):
    first = {}
    for k, t in params.items():
        if id(t) in first:
            yield first[id(t)], k
        first.setdefault(id(t), k)


def test_preset_values_are_the_published_configs(built):
    name, _, ref = built
    cfg, used = preset(name), ref["configs_used_assumed_from_model_cards"]
    # the embedding table is resized to the tokenizer length after X-SAM's three tokens
    assert cfg.llm == dict(used["llm"], vocab_size=used["tokenizer_length_after_xsam_tokens"])
    assert cfg.vision == used["siglip_vision"]
    assert {k: cfg.sam[k] for k in used["sam_vision"]} == used["sam_vision"]
    assert cfg.mask2former == used["mask2former"]
    assert cfg.special_token_ids == ref["special_token_ids"]
    x = used["xsam"]
    assert (cfg.seg_select_layers, cfg.connector_hidden_dim, cfg.connector_scale_factor) == (
        x["seg_select_layers"], x["connector_hidden_dim"], x["connector_scale_factor"])


def test_architecture_is_detected_from_the_keys(built):
    name, model, _ = built
    assert preset_for_state_dict(to_archive_keys(model.state_dict())) == name
