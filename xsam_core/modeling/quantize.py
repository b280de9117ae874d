"""Optional 8-bit / 4-bit LLM weights (bitsandbytes) for GPUs with less memory.

Only the LLM's decoder layers are quantised (q/k/v/o and MLP projections: ~95 % of the released
model's weights); embeddings, lm_head, both image encoders, projectors and the mask decoder stay in
bf16, where their small size buys accuracy. bitsandbytes quantises when the model moves to its
device, so call `quantize_llm` before `.to(device)`.
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("8bit", "4bit")


def quantize_llm(model: nn.Module, mode: str, compute_dtype: torch.dtype = torch.bfloat16) -> int:
    """Swap the LLM decoder's nn.Linear layers for bitsandbytes ones in place; returns how many."""
    if mode not in MODES:
        raise ValueError(f"quantization must be one of {MODES}, got {mode!r}")
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise RuntimeError("8-bit / 4-bit weights need bitsandbytes: pip install bitsandbytes") from e
    count = 0
    for parent in list(model.llm.model.layers.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, _quantized(bnb, child, mode, compute_dtype))
                count += 1
    return count


def _quantized(bnb, linear: nn.Linear, mode: str, compute_dtype: torch.dtype) -> nn.Module:
    bias = linear.bias is not None
    weight = linear.weight.data.to(compute_dtype)
    if mode == "8bit":
        q = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=bias, has_fp16_weights=False)
        q.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        q = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=bias, compute_dtype=compute_dtype,
                              quant_type="nf4")
        q.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    if bias:
        q.bias = nn.Parameter(linear.bias.data.to(compute_dtype), requires_grad=False)
    return q
