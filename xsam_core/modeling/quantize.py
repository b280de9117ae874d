"""Optional 8-bit / 4-bit LLM weights: bitsandbytes on GPUs, torch's own int8 kernels on CPUs.

Only the LLM's decoder layers are quantised (q/k/v/o and MLP projections: ~95 % of the released
model's weights); embeddings, lm_head, both image encoders, projectors and the mask decoder keep a
float dtype, where their small size buys accuracy: bf16 beside the GPU modes, and beside int8-cpu
float32 on a CPU that emulates bf16 (`Predictor.load`). bitsandbytes quantises when the model moves
to its device, so call `quantize_llm` before `.to(device)`.

Modes:
* "8bit" / "4bit" — bitsandbytes LLM.int8() / nf4, for GPUs with less memory;
* "int8-cpu" — int8 per-channel weights with activations quantised per call (torch's dynamic
  quantised Linear, fbgemm/x86 kernels). On a 2-core AVX2 CPU one 3072×8192 Linear ran 4× faster than
  fp32 and 14× faster than (emulated) bf16 at 128 tokens (`scripts/int8_check.py`). torchao 0.18's
  int8 configs were measured too: in eager mode on CPU they were slower than fp32 (they need
  torch.compile), so this mode uses torch.ao's kernels although torch marks that namespace deprecated.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch
from torch import nn

BNB_MODES = ("8bit", "4bit")
CPU_MODES = ("int8-cpu",)
MODES = BNB_MODES + CPU_MODES


class QuantizeError(ValueError):
    """A quantisation mode that cannot run here (unknown, missing library, wrong device)."""


def check_mode(mode: str, device: str | torch.device | None = None) -> None:
    """Refuse a mode that cannot work on `device` before anything is loaded."""
    if mode not in MODES:
        raise QuantizeError(f"quantization must be one of {MODES}, got {mode!r}")
    if mode in CPU_MODES:
        if device is not None and torch.device(device).type != "cpu":
            raise QuantizeError(f"--quantize {mode} runs on the CPU only (torch's quantised CPU kernels); "
                                f"on {torch.device(device).type} use --quantize 8bit (bitsandbytes)")
        if torch.backends.quantized.engine == "none":
            raise QuantizeError(f"--quantize {mode}: this torch build has no quantised CPU engine "
                                f"(supported: {torch.backends.quantized.supported_engines})")


def decoder_linears(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, layer) for every nn.Linear of the LLM's decoder: the layers every mode quantises."""
    for parent in list(model.llm.model.layers.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                yield parent, name, child


def quantize_llm(model: nn.Module, mode: str, compute_dtype: torch.dtype = torch.bfloat16,
                 device: str | torch.device | None = None) -> int:
    """Swap the LLM decoder's nn.Linear layers for quantised ones in place; returns how many."""
    check_mode(mode, device)
    if mode in CPU_MODES:
        make = Int8Linear
    else:
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise QuantizeError("8-bit / 4-bit weights need bitsandbytes: pip install bitsandbytes") from e

        def make(linear):
            return _bnb_quantized(bnb, linear, mode, compute_dtype)
    count = 0
    for parent, name, child in list(decoder_linears(model)):
        setattr(parent, name, make(child))
        count += 1
    return count


def _bnb_quantized(bnb, linear: nn.Linear, mode: str, compute_dtype: torch.dtype) -> nn.Module:
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


class Int8Linear(nn.Module):
    """A Linear with int8 per-output-channel weights, run by torch's dynamic quantised Linear.

    Those kernels take and return float32; the wrapper casts so the rest of the model can be bf16 too."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # a float32 Linear to quantise from; skip_init: a random init would be overwritten (a quarter of the time)
        fp32 = torch.nn.utils.skip_init(nn.Linear, self.in_features, self.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            fp32.weight.copy_(linear.weight)
            if linear.bias is not None:
                fp32.bias.copy_(linear.bias)
        with warnings.catch_warnings():  # torch.ao's deprecation notice: chosen knowingly (module docstring)
            warnings.simplefilter("ignore")
            from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
            from torch.ao.quantization import per_channel_dynamic_qconfig

            fp32.qconfig = per_channel_dynamic_qconfig  # per-channel: ~2× smaller error than per-tensor
            self.q = DynamicLinear.from_float(fp32)

    def int8_weight(self) -> torch.Tensor:
        return self.q.weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x.float()).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=qint8 per-channel"


def is_decoder_linear_key(key: str, shape) -> bool:
    """`decoder_linears`' rule on checkpoint keys (tests/test_quantize.py checks that both pick the same)."""
    return key.startswith("llm.model.layers.") and key.endswith("proj.weight") and len(shape) == 2


def weight_bytes(shapes: dict[str, list[int]], mode: str | None, dtype_bytes: int = 2) -> int:
    """Bytes of a checkpoint's weights ({key: shape}, official key layout) with `mode`, without building
    anything: decoder Linear weights at 1 byte (int8-cpu: + an fp64 scale and an int64 zero point per
    output row; 8bit: + an fp32 scale per row; 4bit: nf4 at 0.5 byte + an fp32 absmax per 64), the rest
    at `dtype_bytes`."""
    total = 0
    for key, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        if mode is None or not is_decoder_linear_key(key, shape):
            total += n * dtype_bytes
        elif mode == "int8-cpu":
            total += n + 16 * shape[0]
        elif mode == "8bit":
            total += n + 4 * shape[0]
        elif mode == "4bit":
            total += n // 2 + 4 * (n // 64)
        else:
            raise QuantizeError(f"unknown mode {mode!r}")
    return total
