"""8-bit / 4-bit LLM weights (bitsandbytes): the quantized model still answers like the original."""

import pytest
import torch

from xsam_core.evaluation.conformance import traced_predict
from xsam_core.inference.predictor import Predictor


def _hidden(pred: Predictor, image) -> torch.Tensor:
    _, tensors = traced_predict(pred, image, "refseg", "the red box", None, "Sure, <SEG>.")
    return tensors["llm.last_hidden_state"].float()


@pytest.mark.parametrize("mode, tolerance", [("8bit", 0.05), ("4bit", 0.25)])
def test_quantized_llm_stays_close(ref_model, mode, tolerance):  # bitsandbytes: requirements-test.txt
    image = ref_model / "cases" / "refseg" / "image.png"
    ref = Predictor.load(str(ref_model), dtype=torch.bfloat16)
    quant = Predictor.load(str(ref_model), quantize=mode)
    assert quant.quantized == mode and ref.quantized is None
    assert quant.describe()["llm_weights"] == mode
    a, b = _hidden(ref, image), _hidden(quant, image)
    assert ((a - b).norm() / a.norm()).item() < tolerance
    ref_bytes = sum(p.numel() * p.element_size() for p in ref.model.llm.model.layers.parameters())
    quant_bytes = sum(p.numel() * p.element_size() for p in quant.model.llm.model.layers.parameters())
    assert quant_bytes < 0.6 * ref_bytes  # int8 / nf4 instead of bf16 (norm weights stay bf16)
