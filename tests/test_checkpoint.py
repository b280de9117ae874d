"""Checkpoints: key layouts, strict loading, the converter, self-contained folders and hub ids.

Everything runs on the tiny reference fixture (tests/data) or on tiny configs; the hub is a fake offline cache.
"""

import hashlib
import re
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from xsam_core.evaluation.conformance import load_predictor, traced_predict
from xsam_core.inference.predictor import Predictor, build_model
from xsam_core.modeling import convert
from xsam_core.modeling.checkpoint import (
    RELEASED,
    CheckpointError,
    detect_layout,
    load_tokenizer,
    load_weights,
    read_state_dict,
    resolve,
    save_folder,
)
from xsam_core.modeling.config import XSamConfig, tiny_config
from xsam_core.modeling.model import XSamModel

FIXTURE = Path(__file__).resolve().parent / "data" / "xsam-ref"  # = conftest.REF_MODEL
CONFIG = FIXTURE / "config.json"
IMAGE = FIXTURE / "cases" / "refseg" / "image.png"

pytestmark = pytest.mark.usefixtures("ref_model")  # fails, never skips, without the fixture


def archive_sd() -> dict:
    return read_state_dict(FIXTURE / "pytorch_model.bin")


def to_main_layout(sd: dict) -> dict:
    """What the official convert_xsam_s3_checkpoint.py makes of an archive-layout state dict."""
    out = {}
    for k, v in sd.items():
        k = "vision_encoder." + k[len("visual_encoder."):] if k.startswith("visual_encoder.") else k
        out["segmentor.class_predictor.logit_scale" if k == "segmentor.logit_scale" else k] = v
    return out


def fixture_model(sd: dict) -> XSamModel:
    model = build_model(XSamConfig.load(CONFIG))
    load_weights(model, sd)
    return model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []


def predictions(pred: Predictor) -> tuple:
    """A forced refseg (every traced tensor, the mask) and a short greedy chat."""
    seg, trace = traced_predict(pred, IMAGE, "refseg", "the red box on the left", None, "Sure, <SEG>.", seed=1)
    chat = pred.predict(IMAGE, "chat", "What is in this picture?", max_new_tokens=8)
    return trace, seg.label_map, seg.segments[0].score, chat.raw_text


def assert_same_predictions(a: tuple, b: tuple) -> None:
    """Equal up to float rounding: identical weights in differently aligned memory (mmap'd safetensors
    against torch.load) may take other BLAS kernels on some CPUs; 1e-4 is the conformance tolerance."""
    (trace_a, map_a, score_a, chat_a), (trace_b, map_b, score_b, chat_b) = a, b
    assert trace_a.keys() == trace_b.keys()
    for k in trace_a:
        torch.testing.assert_close(trace_a[k], trace_b[k], rtol=1e-5, atol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    assert np.array_equal(map_a, map_b) and score_a == pytest.approx(score_b, abs=1e-5) and chat_a == chat_b


@pytest.fixture(scope="module")
def direct():
    """The fixture loaded as the conformance runner loads it, and its predictions."""
    pred = load_predictor(FIXTURE)
    return pred, predictions(pred)


@pytest.fixture(scope="module")
def fp32_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "xsam-tiny"
    convert.convert(str(FIXTURE / "pytorch_model.bin"), str(FIXTURE / "tokenizer_base"), out, "float32", str(CONFIG))
    return out


# --- layouts and strict loading ---------------------------------------------------------------------

def test_tiny_configs_build():
    qwen, phi = build_model(tiny_config()), build_model(tiny_config(llm_type="phi3"))
    assert qwen.llm.lm_head.weight is qwen.llm.model.embed_tokens.weight  # tied (Qwen3)
    assert phi.llm.lm_head.weight is not phi.llm.model.embed_tokens.weight


def test_archive_and_main_layouts_load_identically():
    sd = archive_sd()
    main = to_main_layout(sd)
    assert (detect_layout(sd), detect_layout(main)) == ("archive", "main")
    assert_same_weights(fixture_model(sd), fixture_model(main))


def test_state_dict_wrapper_loads(tmp_path):
    sd = archive_sd()
    torch.save({"state_dict": sd, "meta": {"step": 1}}, tmp_path / "wrapped.bin")
    assert_same_weights(fixture_model(read_state_dict(tmp_path / "wrapped.bin")), fixture_model(sd))


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.pop("visual_encoder.vision_model.post_layernorm.bias"),
     "missing: visual_encoder.vision_model.post_layernorm.bias [32]"),
    (lambda sd: sd.update({"segmentor.criterion.empty_weight": torch.zeros(2)}),
     "unexpected: segmentor.criterion.empty_weight [2]"),
    (lambda sd: sd.update({"bg_embeds.weight": torch.zeros(2, 32)}),
     "shape: bg_embeds.weight checkpoint [2, 32] vs model [1, 32]"),
], ids=["missing", "unexpected", "shape"])
def test_strict_loading_names_the_key(edit, message):
    sd = dict(archive_sd())
    edit(sd)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        fixture_model(sd)


# --- the converter --------------------------------------------------------------------------------

def test_converted_folder_predicts_like_the_fixture(fp32_folder, direct):
    pred = Predictor.load(str(fp32_folder), device="cpu", attn_implementation="eager")
    assert_same_weights(pred.model, direct[0].model)
    assert_same_predictions(predictions(pred), direct[1])


def test_bfloat16_folder(tmp_path, direct):
    summary = convert.convert(str(FIXTURE / "pytorch_model.bin"), str(FIXTURE / "tokenizer"), tmp_path / "bf16",
                              "bfloat16", str(CONFIG))
    with safe_open(tmp_path / "bf16" / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
        assert len(f.keys()) == summary["tensors"] == 438
    # read back in float32, it is exactly the fixture with its weights rounded to bfloat16
    rounded = {k: v.to(torch.bfloat16).float() for k, v in archive_sd().items()}
    ref = Predictor(fixture_model(rounded).eval(), load_tokenizer(FIXTURE / "tokenizer"))
    pred = Predictor.load(str(tmp_path / "bf16"), device="cpu", dtype=torch.float32)
    assert_same_weights(pred.model, ref.model)
    assert_same_predictions(predictions(pred), predictions(ref))


def test_safetensors_main_layout_input(tmp_path, fp32_folder):
    save_file(to_main_layout(archive_sd()), tmp_path / "main.safetensors")
    summary = convert.convert(str(tmp_path / "main.safetensors"), str(FIXTURE / "tokenizer"), tmp_path / "out",
                              "float32", str(CONFIG))
    assert summary["layout"] == "main"
    assert_same_weights(Predictor.load(str(tmp_path / "out"), device="cpu").model,
                        Predictor.load(str(fp32_folder), device="cpu").model)


def test_cli_summary_and_strict_failure(tmp_path, capsys):
    args = ["--tokenizer", str(FIXTURE / "tokenizer"), "--config", str(CONFIG), "--dtype", "float32"]
    assert convert.main(["--checkpoint", str(FIXTURE / "pytorch_model.bin"), "--out", str(tmp_path / "ok"), *args]) == 0
    out = capsys.readouterr().out
    for field in ("preset", "layout   archive", "tensors  438", "bytes", "dtype    float32"):
        assert field in out
    sd = dict(archive_sd())
    del sd["seg_connector.model.0.model.0.weight"]
    torch.save(sd, tmp_path / "broken.bin")
    assert convert.main(["--checkpoint", str(tmp_path / "broken.bin"), "--out", str(tmp_path / "no"), *args]) == 1
    assert "missing: seg_connector.model.0.model.0.weight" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_wrong_tokenizer_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="tokenizer"):
        convert.convert(str(FIXTURE / "pytorch_model.bin"), str(FIXTURE / "tokenizer"), tmp_path / "out",
                        config=str(_shifted_config(tmp_path)))


def _shifted_config(tmp_path: Path) -> Path:
    """The fixture config expecting other ids for X-SAM's tokens (as a different LLM would)."""
    cfg = XSamConfig.load(CONFIG)
    cfg.special_token_ids = {k: v - 3 for k, v in cfg.special_token_ids.items()}
    cfg.save(tmp_path / "shifted.json")
    return tmp_path / "shifted.json"


def test_tied_embeddings_round_trip(tmp_path):
    cfg = tiny_config(vocab_size=369)  # Qwen3 with tie_word_embeddings; fits the fixture tokenizer
    torch.manual_seed(0)
    model = XSamModel(cfg).eval()
    save_folder(model, load_tokenizer(FIXTURE / "tokenizer"), tmp_path, dtype=torch.float32)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "llm.model.embed_tokens.weight" in keys and "llm.lm_head.weight" not in keys
    loaded = Predictor.load(str(tmp_path), device="cpu").model
    assert loaded.llm.lm_head.weight is loaded.llm.model.embed_tokens.weight
    assert_same_weights(loaded, model)


# --- hub ids, offline -----------------------------------------------------------------------------

def publish(cache: Path, repo_id: str, files: dict) -> Path:
    """Lay files out as huggingface_hub's cache does: snapshots/<commit>/<path>, refs/main = commit."""
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for rel, src in files.items():
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / rel).symlink_to(Path(src).resolve())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def tokenizer_files(folder: Path) -> dict:
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty offline Hugging Face cache (huggingface_hub reads both constants at call time)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_released_weights_resolve_from_the_cache(hub, tmp_path):
    xsam = publish(hub, "hao9610/X-SAM", {w["file"]: FIXTURE / "pytorch_model.bin" for w in RELEASED.values()})
    for variant, where in RELEASED.items():
        tok = publish(hub, where["tokenizer"], tokenizer_files(FIXTURE / "tokenizer_base"))
        files = resolve(f"hao9610/X-SAM:{variant}", cache_dir=hub)
        assert (files["weights"], files["tokenizer"], files["config"].name) == (xsam / where["file"], tok, variant)
    phi3 = xsam / RELEASED["xsam-phi3"]["file"]
    assert resolve("hao9610/X-SAM", cache_dir=hub)["weights"] == phi3  # the default variant
    # the converter takes the hub id; the fixture config stands in for the full-size preset
    summary = convert.convert("hao9610/X-SAM", None, tmp_path / "out", "float32", str(CONFIG), cache_dir=str(hub))
    assert summary["weights"] == str(phi3)


def test_published_folder_resolves_and_loads(hub, fp32_folder, direct):
    snapshot = publish(hub, "someone/xsam-tiny", {p.name: p for p in fp32_folder.iterdir()})
    files = resolve("someone/xsam-tiny", cache_dir=hub)
    assert (files["weights"], files["tokenizer"]) == (snapshot / "model.safetensors", snapshot)
    pred = Predictor.load("someone/xsam-tiny", device="cpu")  # through the default (patched) cache
    assert_same_weights(pred.model, direct[0].model)


def test_unresolvable_names(hub):
    with pytest.raises(CheckpointError, match="unknown released variant"):
        resolve("hao9610/X-SAM:xsam-llama")
    with pytest.raises(CheckpointError, match="no such file"):
        resolve("missing/pytorch_model.bin")  # looks like owner/name, but is a path
    with pytest.raises(OSError):  # not cached, and offline: no network attempt
        resolve("someone/not-cached")
    with pytest.raises(CheckpointError, match="bare weights file"):
        resolve(str(FIXTURE / "pytorch_model.bin"))


def test_pixel_decoder_samples_in_float32():
    """The deformable sampling runs in float32 whatever the model's dtype (as X-SAM's own copy does)."""
    from transformers.models.mask2former import modeling_mask2former as m2f

    from xsam_core.modeling import segmentor

    assert m2f.multi_scale_deformable_attention is segmentor._deformable_attention_fp32
    gen = torch.Generator().manual_seed(0)
    shapes = [(16, 16), (8, 8)]
    value = torch.randn(1, 16 * 16 + 8 * 8, 4, 8, generator=gen).bfloat16()
    locations = torch.rand(1, 10, 4, 2, 4, 2, generator=gen).bfloat16()
    weights = torch.rand(1, 10, 4, 2, 4, generator=gen).softmax(-1).bfloat16()
    out = m2f.multi_scale_deformable_attention(value, shapes, locations, weights)
    in_fp32 = segmentor._deformable_attention(value.float(), shapes, locations.float(), weights.float())
    assert out.dtype == torch.bfloat16 and torch.equal(out, in_fp32.bfloat16())
    assert not torch.equal(out, segmentor._deformable_attention(value, shapes, locations, weights))
