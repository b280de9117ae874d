"""What keeping the mask-edge filter with a cached image saves a request on it.

    python scripts/analysis/snap_cache_cost.py [--rounds 2] [--repeats 7]

Times requests of the embedded model on the benchmark's 640×480 scene (`bench.scene_image`) whose
encodings are cached, once with the cached image's `EdgeSnap` filters dropped before each request (each
request builds its whole-image guided filter again, as before the cache kept them) and once kept. Tasks:
panoptic segmentation (its class scores are always filtered over the whole image) and a referring
request whose mask is large enough to be filtered whole. The two modes alternate within each round so
that machine noise falls on both alike. Prints the median total and post-processing times (ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

sys.path.insert(0, ".")
from xsam_core.evaluation.bench import scene_image  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402

REQUESTS = {  # name: (task, text)
    "panoptic": ("genseg", "pan: star, ring, square, circle, cross, triangle; sem: wall, floor"),
    "refseg": ("refseg", "the wall"),
}


def time_requests(predictor: Predictor, image, task: str, text: str, keep: bool, repeats: int) -> tuple:
    totals, post = [], []
    for _ in range(repeats):
        entry, _ = predictor.encode(image)
        if not keep:
            entry.snaps.clear()
        t = time.perf_counter()
        pred = predictor.predict(image, task, text)
        totals.append((time.perf_counter() - t) * 1000)
        post.append(pred.timings.get("postprocess", 0.0))
    return statistics.median(totals), statistics.median(post)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    predictor, image = Predictor.load(None), scene_image()
    for name, (task, text) in REQUESTS.items():
        predictor.predict(image, task, text)  # encodings and prefix cached
        for r in range(args.rounds):
            row = []
            for keep in (False, True):
                total, post = time_requests(predictor, image, task, text, keep, args.repeats)
                row.append(f"{'kept' if keep else 'rebuilt'} {total:6.1f} ms (postprocess {post:5.1f})")
            print(f"{name:8s} round {r + 1}: " + "   ".join(row))


if __name__ == "__main__":
    main()
