"""Where a model's memory goes: anonymous RSS (what cannot be dropped, unlike a mapped weights file's
pages) while it loads and through each stage of one cold request.

    python scripts/analysis/request_memory.py [--model DIR] [--quantize int8-cpu]

A thread samples /proc/self/status every 5 ms; the Predictor's stage callback says which stage runs.
Printed per stage: the peak of anonymous and of total RSS while it ran, and the anonymous RSS when it
ended; then the bytes of the image's cache entry (encodings + the prompt prefix's KV). The request is
`bench`'s: a 640 x 480 shapes scene, one click, the answer forced. To see the smallest memory a model
runs in, run this under a memory cgroup (README, "On a CPU").
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

sys.path.insert(0, ".")
from xsam_core.evaluation import bench  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402


def rss_mb() -> dict[str, float]:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "VmRSS")}


class StageMemory:
    """Peaks of anonymous / total RSS per stage, sampled in the background."""

    def __init__(self):
        self.stage, self.peaks, self.ends = "load", {}, {}
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            now, peak = rss_mb(), self.peaks.setdefault(self.stage, {"RssAnon": 0.0, "VmRSS": 0.0})
            for k, v in now.items():
                peak[k] = max(peak[k], v)
            time.sleep(0.005)

    def enter(self, stage: str) -> None:
        if self.stage in self.peaks and self.stage != "load":
            self.ends[self.stage] = rss_mb()["RssAnon"]
        self.stage = stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder (default: the embedded model)")
    ap.add_argument("--quantize")
    args = ap.parse_args()
    mem = StageMemory()
    t = time.perf_counter()
    pred = Predictor.load(args.model, quantize=args.quantize)
    print(f"load {time.perf_counter() - t:.1f} s", flush=True)
    mem.enter("loaded")
    time.sleep(0.1)
    image = bench.scene_image()
    out = pred.predict(image, "intseg", prompts=bench.click(image, 0), force_answer=bench.ANSWER, on_stage=mem.enter)
    mem.enter("done")
    time.sleep(0.1)
    print(f"{'stage':<14} {'peak anon MB':>12} {'peak RSS MB':>12} {'anon at end':>12} {'ms':>9}")
    for stage, peak in mem.peaks.items():
        end = mem.ends.get(stage)
        print(f"{stage:<14} {peak['RssAnon']:12.0f} {peak['VmRSS']:12.0f} {'' if end is None else f'{end:12.0f}':>12}"
              f" {out.timings.get(stage, 0):9.0f}")
    entry = next(iter(pred.cache._items.values()))
    print(f"image cache entry: {entry.nbytes() / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
