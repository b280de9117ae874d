"""scripts/rehearse_release.py's cache (not its full-size run): random weights written tensor by tensor
in the archive layout, laid out as preload_from_hub leaves them, resolve offline through huggingface_hub
and the core's own resolve(), and load strictly into the fixture's model."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from xsam_core.inference.predictor import build_model
from xsam_core.modeling.checkpoint import load_weights, read_state_dict
from xsam_core.modeling.config import XSamConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def rehearse(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the script sets it on import; restored after the test
    spec = importlib.util.spec_from_file_location("rehearse_release", ROOT / "scripts" / "rehearse_release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixture_cache_resolves_offline_and_loads(rehearse, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    keys = rehearse.archive_keys("fixture")
    written = rehearse.write_checkpoint(tmp_path / "w.bin", keys, seed=3)
    assert written["tensors"] == 438 and written["data_bytes"] == 2 * written["elements"]
    assert rehearse.check_checkpoint(tmp_path / "w.bin", keys, seed=3)["layout"] == "archive"

    snapshot = rehearse.publish(hub, "hao9610/X-SAM", {rehearse.WEIGHTS_FILE: tmp_path / "w.bin"}, move=True)
    tok_files = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    rehearse.publish(hub, "microsoft/Phi-3-mini-4k-instruct",
                     {f: ROOT / "tests/data/xsam-ref/tokenizer_base" / f for f in tok_files})
    link = snapshot / rehearse.WEIGHTS_FILE
    assert link.is_symlink() and not os.readlink(link).startswith("/")  # relative, as huggingface_hub makes them
    assert link.resolve().parent == hub / "models--hao9610--X-SAM" / "blobs"
    assert link.resolve().name == rehearse.sha256(link)  # an LFS file's blob is named by its sha256

    found = rehearse.check_cache(hub, tok_files)  # huggingface_hub and the core's resolve("hao9610/X-SAM")
    assert found["weights"] == str(link) and found["special_ids"] == {"<SEG>": 366, "<p>": 367, "</p>": 368}
    model = build_model(XSamConfig.load(ROOT / "tests/data/xsam-ref/config.json"), torch.float32)
    load_weights(model, read_state_dict(found["weights"]))  # strict: every key, every shape
    assert torch.all(model.llm.model.norm.weight == 1)
