"""Issue 10: what bf16 would buy the embedded model's cold request on a CPU with native bf16.

    python scripts/analysis/inference_dtype_cost.py [--model DIR] [--modes fp32,bf16,autocast] [--rounds 7]

The Predictor runs models under `SMALL_MODEL` parameters in float32 (`choose_dtype`), though training
runs under bf16 autocast. This times the benchmark's cold request (`bench`'s 640×480 scene, one click,
intseg, the answer forced) per stage with the weights in float32 (`fp32`), in bf16 (`bf16`, what
`--dtype bfloat16` loads) and in float32 under `torch.autocast` to bf16 (`autocast`, as training
computes). The modes alternate within each round so that machine noise falls on all alike; the first
round is a warm-up and not counted. Printed: the median of each stage per mode, in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

sys.path.insert(0, ".")
import torch  # noqa: E402

from xsam_core.evaluation.bench import ANSWER, click, scene_image  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402

MODES = ("fp32", "bf16", "autocast")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder (default: the embedded model)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        ap.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    predictors = {m: Predictor.load(args.model, dtype="bfloat16" if m == "bf16" else "float32") for m in modes}
    image = scene_image()
    runs = {m: [] for m in modes}
    for r in range(args.rounds + 1):
        for m in modes:
            pred = predictors[m]
            pred.cache.clear()
            compute = torch.autocast("cpu", dtype=torch.bfloat16) if m == "autocast" else contextlib.nullcontext()
            with compute:
                start = time.perf_counter()
                out = pred.predict(image, "intseg", prompts=click(image, r), force_answer=ANSWER)
                total = (time.perf_counter() - start) * 1000
            if r:
                runs[m].append({"total": total, **out.timings})
    for m in modes:
        stages = " ".join(f"{k} {statistics.median(x[k] for x in runs[m]):.1f}" for k in runs[m][0])
        print(f"{m:9s} {stages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
