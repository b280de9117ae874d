"""Quantized LLM weights (bitsandbytes 8-bit / 4-bit, torch's int8 CPU kernels): the model still answers
like the original."""

import pytest
import torch

from xsam_core.cli import QUANTIZE_MODES
from xsam_core.evaluation.conformance import traced_predict
from xsam_core.inference import predictor
from xsam_core.inference.predictor import Predictor
from xsam_core.modeling import quantize
from xsam_core.modeling.quantize import CPU_MODES, Int8Linear, QuantizeError, decoder_linears


def _traced(pred: Predictor, image):
    return traced_predict(pred, image, "refseg", "the red box", None, "Sure, <SEG>.")


def _layer_bytes(pred: Predictor) -> int:
    """Bytes of the LLM decoder's weights, the int8 ones (packed, not parameters) included."""
    layers = pred.model.llm.model.layers
    n = sum(p.numel() * p.element_size() for p in layers.parameters())
    return n + sum(m.int8_weight().numel() for m in layers.modules() if isinstance(m, Int8Linear))


# int8-cpu quantises activations too (per call): ~3 % on this model's hidden states (scripts/int8_check.py)
@pytest.mark.parametrize("mode, tolerance", [("8bit", 0.05), ("4bit", 0.25), ("int8-cpu", 0.06)])
def test_quantized_llm_stays_close(ref_model, test_device, mode, tolerance):  # bitsandbytes: requirements-test.txt
    image = ref_model / "cases" / "refseg" / "image.png"
    device = "cpu" if mode in CPU_MODES else test_device  # bitsandbytes: also on cuda (XSAM_TEST_DEVICE)
    ref = Predictor.load(str(ref_model), dtype=torch.bfloat16, device=device)
    quant = Predictor.load(str(ref_model), quantize=mode, device=device)
    assert quant.quantized == mode and ref.quantized is None
    assert quant.describe()["llm_weights"] == mode
    (out_a, a), (out_b, b) = _traced(ref, image), _traced(quant, image)
    h_a, h_b = a["llm.last_hidden_state"].float(), b["llm.last_hidden_state"].float()
    assert ((h_a - h_b).norm() / h_a.norm()).item() < tolerance
    assert _layer_bytes(quant) < 0.6 * _layer_bytes(ref)  # int8 / nf4 instead of bf16 (norm weights stay bf16)
    if mode == "int8-cpu":  # and the mask it draws: same mask (IoU), logits within 5 %
        m_a, m_b = out_a.segments[0].mask, out_b.segments[0].mask
        assert (m_a & m_b).sum() / (m_a | m_b).sum() > 0.95
        l_a, l_b = a["masks_queries_logits"].float(), b["masks_queries_logits"].float()
        assert ((l_a - l_b).norm() / l_a.norm()).item() < 0.05


def test_int8_cpu_replaces_every_decoder_linear_with_int8(ref_model):
    ref = Predictor.load(str(ref_model), device="cpu", dtype="float32")
    chosen = [(parent, name) for parent, name, _ in decoder_linears(ref.model)]
    assert quantize.quantize_llm(ref.model, "int8-cpu", torch.float32, "cpu") == len(chosen) > 0
    for parent, name in chosen:
        layer = getattr(parent, name)
        assert isinstance(layer, Int8Linear) and layer.int8_weight().dtype == torch.qint8
    assert not any(isinstance(m, torch.nn.Linear) for m in ref.model.llm.model.layers.modules())
    assert isinstance(ref.model.llm.lm_head, torch.nn.Linear)  # outside the decoder: left as it was


@pytest.mark.parametrize("native_bf16, memory, rest", [(False, 2**40, torch.float32), (True, 2**40, torch.bfloat16),
                                                       (False, 2**20, torch.bfloat16)])
def test_int8_cpu_rest_is_float32_where_bf16_is_emulated(ref_model, monkeypatch, native_bf16, memory, rest):
    """Beside int8 weights, a large model's rest stays float32 on a CPU that emulates bf16 (the embedded
    model's pixel decoder: 2.7 s in bf16 against 34 ms on a 2-core AVX2 EPYC), unless memory is short."""
    monkeypatch.setattr(predictor, "SMALL_MODEL", 0)  # the reference model stands in for the released one
    monkeypatch.setattr(predictor, "native_bf16", lambda: native_bf16)
    monkeypatch.setattr(predictor, "physical_memory", lambda: memory)
    pred = Predictor.load(str(ref_model), device="cpu", quantize="int8-cpu")
    assert pred.quantized == "int8-cpu"
    assert {p.dtype for p in pred.model.parameters()} == {rest}  # the int8 layers hold no parameters
    assert pred.describe().get("emulated_bf16", False) == (rest == torch.bfloat16 and not native_bf16)
    assert pred.predict(ref_model / "cases" / "refseg" / "image.png", "refseg", "the red box").text


def test_decoder_key_rule_picks_the_same_layers(ref_model):
    """weight_bytes counts from checkpoint keys; its rule must match decoder_linears on a real model."""
    pred = Predictor.load(str(ref_model), device="cpu")
    names = {f"{n}.weight" for n, m in pred.model.named_modules() if isinstance(m, torch.nn.Linear)}
    by_module = {f"{n}.weight" for n, m in pred.model.named_modules()
                 if any(m is child for _, _, child in decoder_linears(pred.model))}
    by_key = {k for k in names if quantize.is_decoder_linear_key(k, (1, 1))}
    assert by_key == by_module and by_module


def test_int8_cpu_refused_off_cpu(ref_model):
    with pytest.raises(QuantizeError, match="CPU only"):
        Predictor.load(str(ref_model), device="cuda", quantize="int8-cpu")
    with pytest.raises(QuantizeError, match="one of"):
        Predictor.load(str(ref_model), device="cpu", quantize="int4")


def test_cli_choices_are_the_modes():
    assert QUANTIZE_MODES == list(quantize.MODES)


def test_phi3_int8_weights_fit_target(ref_model):
    import json

    keys = dict(json.loads((ref_model / "xsam-phi3-full-keys.json").read_text())["keys"])
    assert quantize.weight_bytes(keys, None) == 2 * 4_624_248_065  # every tensor, bf16
    assert quantize.weight_bytes(keys, "int8-cpu") < 5.5 * 2**30
