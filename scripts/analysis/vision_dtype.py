"""The released architecture's image encoding in bf16 and in float32 on this CPU (random weights).

    python scripts/analysis/vision_dtype.py [--dtypes bfloat16,float32] [--rounds 2]

Builds the full-size Phi-3 X-SAM (random bf16 weights, 9.3 GB) and times `encode_image` (SigLIP,
SAM ViT-L, the pixel decoder and the connectors) on the benchmark's 640 x 480 scene, with everything
but the LLM in each dtype in turn: what `--quantize int8-cpu` leaves unquantised. On a CPU without
native bf16 (no AVX512-BF16 or AMX; `lscpu` flags) bf16 is emulated, and this shows what that costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager

import torch
from PIL import Image

sys.path.insert(0, ".")
from xsam_core.evaluation import bench  # noqa: E402
from xsam_core.inference.predictor import build_model, native_bf16  # noqa: E402
from xsam_core.inference.processing import sam_pixels, siglip_pixels  # noqa: E402
from xsam_core.modeling.config import preset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"native bf16: {native_bf16()}, threads: {torch.get_num_threads()}")
    cfg = preset("xsam-phi3")
    model = bench.random_init(build_model(cfg, torch.bfloat16, "sdpa")).eval()
    image = Image.fromarray(bench.scene_image())
    for dtype in (getattr(torch, name) for name in args.dtypes.split(",")):
        for name, module in model.named_children():
            if name != "llm":
                module.to(dtype)
        sig = siglip_pixels(image, cfg.siglip_processor).to(dtype)
        sam = sam_pixels(image, cfg.sam_processor)[0].to(dtype)
        for r in range(args.rounds):
            stages = {}

            @contextmanager
            def timer(stage):
                t0 = time.perf_counter()
                yield
                stages[stage] = round(time.perf_counter() - t0, 2)

            t0 = time.perf_counter()
            with torch.inference_mode():
                model.encode_image(sig, sam, timer=timer)
            print(f"{str(dtype):15s} round {r}: {time.perf_counter() - t0:7.2f} s  {stages}", flush=True)


if __name__ == "__main__":
    main()
