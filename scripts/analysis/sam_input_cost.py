"""Issue 10: what a larger SAM input would cost a cold request of the embedded architecture.

    python scripts/analysis/sam_input_cost.py [--sizes 128 160 192] [--rounds 2] [--repeats 7]

The aspect look is the widest gap left (a 3:1 image leaves SAM's 128-px view a short side of about
37 px). Before training a larger view, this times the benchmark's cold request (`bench.worker`: a
640×480 scene, one click, intseg) with the shipped config at each SAM input size (the square, and the
aspect canvases scaled alike): random weights
(N(0, 0.02)), the LLM's context widened to 1024 positions since one token per SAM patch makes a
192-px view 576 tokens. Sizes alternate within each round so that machine noise falls on all alike.
Random weights draw more masks than trained ones, so postprocess reads higher than the benchmark's.
"""

from __future__ import annotations

import argparse
import sys

sys.path.insert(0, ".")
from xsam_core.evaluation import bench  # noqa: E402
from xsam_core.inference.predictor import EMBEDDED_MODEL, Predictor, build_model  # noqa: E402
from xsam_core.modeling.checkpoint import load_tokenizer  # noqa: E402
from xsam_core.modeling.config import XSamConfig  # noqa: E402
from xsam_core.training.train import canvas_unit  # noqa: E402


def canvases_at(cfg: XSamConfig, size: int) -> list:
    """The aspect canvases grown with the square (each side to the nearest `canvas_unit`, 32 px): a
    640×480 scene is seen on a canvas, so the square alone would not change its request at all."""
    scale, unit = size / cfg.sam_processor["longest_edge"], canvas_unit(cfg)
    return [[max(unit, round(side * scale / unit) * unit) for side in c] for c in cfg.sam_processor.get("canvases", [])]


def embedded_at(size: int) -> Predictor:
    cfg = XSamConfig.load(f"{EMBEDDED_MODEL}/config.json")
    cfg.sam_processor = {**cfg.sam_processor, "longest_edge": size, "canvases": canvases_at(cfg, size)}
    cfg.sam["image_size"] = size
    cfg.llm["max_position_embeddings"] = cfg.max_length = 1024
    model = bench.random_init(build_model(cfg))
    return Predictor(model, load_tokenizer(EMBEDDED_MODEL), name=f"embedded, SAM {size} px")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    shipped = XSamConfig.load(f"{EMBEDDED_MODEL}/config.json")
    for r in range(args.rounds):
        for size in args.sizes:
            bench.load = lambda *_, s=size, **__: embedded_at(s)  # the worker's own loader, redirected
            ms = bench.worker("embedded", "cold", args.repeats)["ms"]
            print(f"round {r} SAM {size} px (canvases {canvases_at(shipped, size)}): " + " ".join(f"{k} {v:.1f}" for k, v in ms.items() if v), flush=True)


if __name__ == "__main__":
    main()
