"""`--quantize int8-cpu` measured, side by side in one run (CPU; not a test: timings on a shared CPU vary).

    OMP_NUM_THREADS=1 python scripts/int8_check.py [--threads 1] [--tokens 1,128] [--no-layer] [--json F]

1. Accuracy on the reference model (tests/data/xsam-ref, refseg case), int8 against the unquantised
   model in float32 and in bf16: relative / max abs error of the LLM's last hidden states and of the
   chosen mask's logits, greedy answer equal, mask IoU.
2. Speed (best of 3, ms): one Phi-3-width Linear (3072→8192) and one full-width Phi-3 decoder layer built
   alone, fp32 vs bf16 vs int8-cpu, at 1 token (a decode step) and 128 tokens (a prefill chunk).
   Also torchao 0.18's int8 weight-only config on the Linear when torchao is installed (the alternative
   that was measured before choosing torch's dynamic int8 kernels).
3. Weights of the released Phi-3 X-SAM per mode, from the full-size key/shape list (nothing allocated).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xsam_core.evaluation.conformance import traced_predict  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.modeling.quantize import Int8Linear, weight_bytes  # noqa: E402

REF = ROOT / "tests" / "data" / "xsam-ref"
CASE = REF / "cases" / "refseg"


def accuracy() -> dict:
    meta = json.loads((CASE / "meta.json").read_text())
    image, text = CASE / meta["image"], meta["user_prompt"]
    out, answers = {}, {}
    for dtype in ("float32", "bfloat16"):
        ref = Predictor.load(str(REF), device="cpu", dtype=dtype)
        q = Predictor.load(str(REF), device="cpu", dtype=dtype, quantize="int8-cpu")
        runs = []
        for p in (ref, q):
            forced, tensors = traced_predict(p, image, "refseg", text, None, meta["forced_answer"],
                                             threshold=meta["threshold"], seed=meta["seed"])
            free = p.predict(image, "refseg", text, threshold=meta["threshold"], seed=meta["seed"])
            runs.append((forced, tensors, free))
        (fa, ta, ga), (fb, tb, gb) = runs
        h_a, h_b = ta["llm.last_hidden_state"].float(), tb["llm.last_hidden_state"].float()
        m_a = fa.segments[0].mask if fa.segments else None
        m_b = fb.segments[0].mask if fb.segments else None
        iou = None
        if m_a is not None and m_b is not None:
            union = (m_a | m_b).sum()
            iou = float((m_a & m_b).sum() / union) if union else 1.0
        logits = {k: (ta[k].float(), tb[k].float())
                  for k in ta if "mask" in k and k in tb and ta[k].is_floating_point()}
        answers[dtype] = ga.text
        out[dtype] = {
            "int8_layers": sum(isinstance(m, Int8Linear) for m in q.model.llm.model.layers.modules()),
            "hidden_rel_err": round(((h_a - h_b).norm() / h_a.norm()).item(), 5),
            "hidden_max_abs_err": round((h_a - h_b).abs().max().item(), 5),
            "hidden_max_abs": round(h_a.abs().max().item(), 5),
            "mask_logit_rel_err": {k: round(((a - b).norm() / a.norm()).item(), 5) for k, (a, b) in logits.items()},
            "forced_mask_iou": iou,
            # random tiny weights: the free answer is a long babble decided by near-ties, so report how
            # much of it agrees (and, below, how much fp32 and bf16 agree without any quantisation)
            "greedy_answer_equal": ga.text == gb.text,
            "greedy_common_prefix_chars": common_prefix(ga.text, gb.text), "greedy_answer_chars": len(ga.text),
        }
    out["unquantised_fp32_vs_bf16_greedy_common_prefix_chars"] = common_prefix(answers["float32"], answers["bfloat16"])
    return out


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def best_ms(fn, n: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 1)


def int8_copy(module: nn.Module) -> nn.Module:
    """The module with its Linears swapped for Int8Linear (the layer alone, so not via the LLM's path)."""
    if isinstance(module, nn.Linear):
        return Int8Linear(module)
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear(child))
    return module


def speed(tokens: list[int], layer: bool) -> dict:
    from transformers import Phi3Config
    from transformers.models.phi3.modeling_phi3 import Phi3DecoderLayer, Phi3RotaryEmbedding

    torch.manual_seed(0)
    lin = nn.Linear(3072, 8192, bias=False)
    nn.init.normal_(lin.weight, std=0.02)
    variants = {"fp32": (lin, torch.float32), "bf16": (copy.deepcopy(lin).bfloat16(), torch.bfloat16),
                "int8-cpu (bf16 in/out)": (int8_copy(lin), torch.bfloat16)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.quantization import Int8WeightOnlyConfig, quantize_
        tao = nn.Sequential(copy.deepcopy(lin))
        quantize_(tao, Int8WeightOnlyConfig())
        variants["torchao int8 weight-only (fp32, eager)"] = (tao, torch.float32)
    except ImportError:
        pass
    res = {"linear_3072x8192": {}, "decoder_layer": {}}
    with torch.inference_mode():
        for t in tokens:
            x = torch.randn(t, 3072)
            ref = lin(x)
            for name, (m, dt) in variants.items():
                y = m(x.to(dt)).float()
                res["linear_3072x8192"][f"{name} @{t} tok"] = {
                    "ms": best_ms(lambda: m(x.to(dt))), "rel_err": round(((y - ref).norm() / ref.norm()).item(), 5)}
    if not layer:
        return res
    cfg = Phi3Config(hidden_size=3072, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=32,
                     num_hidden_layers=1, vocab_size=32064)
    cfg._attn_implementation = "sdpa"
    fp32 = Phi3DecoderLayer(cfg, 0).eval()
    for p in fp32.parameters():  # the usual init; norm scales stay 1
        if p.dim() == 2:
            nn.init.normal_(p, std=0.02)
    rope = Phi3RotaryEmbedding(cfg)
    layers = {"fp32": (fp32, torch.float32), "bf16": (copy.deepcopy(fp32).bfloat16(), torch.bfloat16),
              "int8-cpu (rest bf16)": (int8_copy(fp32).bfloat16(), torch.bfloat16),
              "int8-cpu (rest fp32)": (int8_copy(fp32), torch.float32)}
    with torch.inference_mode():
        for t in tokens:
            x = torch.randn(1, t, 3072)
            pos = torch.arange(t)[None]
            ref = fp32(x, position_embeddings=rope(x, pos), position_ids=pos)
            ref = ref[0] if isinstance(ref, tuple) else ref
            for name, (m, dt) in layers.items():
                xx = x.to(dt)
                pe = tuple(e.to(dt) for e in rope(xx, pos))

                def run():
                    y = m(xx, position_embeddings=pe, position_ids=pos)
                    return y[0] if isinstance(y, tuple) else y
                y = run().float()
                res["decoder_layer"][f"{name} @{t} tok"] = {
                    "ms": best_ms(run), "rel_err": round(((y - ref).norm() / ref.norm()).item(), 5)}
    return res


def phi3_weights() -> dict:
    keys = json.loads((REF / "xsam-phi3-full-keys.json").read_text())["keys"]
    shapes = dict(keys)
    rows = {}
    for label, mode, rest in [("bf16", None, 2), ("int8-cpu, rest bf16", "int8-cpu", 2),
                              ("int8-cpu, rest fp32", "int8-cpu", 4), ("8bit (bnb)", "8bit", 2),
                              ("4bit (bnb nf4)", "4bit", 2)]:
        b = weight_bytes(shapes, mode, rest)
        rows[label] = {"GB": round(b / 1e9, 2), "GiB": round(b / 2**30, 2)}
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", default="1,128")
    ap.add_argument("--layer", action=argparse.BooleanOptionalAction, default=True,
                    help="also a full-width decoder layer (~450 MB fp32)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"threads": torch.get_num_threads(), "quantized_engine": torch.backends.quantized.engine}
    report["phi3_weights"] = phi3_weights()
    print(json.dumps({"phi3_weights": report["phi3_weights"]}), flush=True)
    report["accuracy"] = accuracy()
    print(json.dumps({"accuracy": report["accuracy"]}), flush=True)
    report["speed"] = speed([int(t) for t in args.tokens.split(",")], args.layer)
    for group, rows in report["speed"].items():
        print(f"\n{group} (best of 3, {report['threads']} thread(s))")
        for name, r in rows.items():
            print(f"  {name:48s} {r['ms']:9.1f} ms   rel err vs fp32 {r['rel_err']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
