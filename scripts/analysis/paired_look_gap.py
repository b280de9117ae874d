"""Issue 10: a look's referring and reasoning gap from plain, request by request, with its uncertainty.

    python scripts/analysis/paired_look_gap.py --data runs/robust200v3/plain runs/robust200v3/jpeg [--model DIR]

Two folders written from the same seed (`robustness --n 200 --seed 987654321 --data runs/robust200v3`),
the first plain, the second in a look that keeps the geometry: since dataset version 3 they hold the
same requests in the same order (checked here). For each task, both mean IoUs, the mean of the
per-request differences, and a 95 % bootstrap interval of it (10,000 resamples of the requests), so a
cell near the issue's −0.05 can be told from the spread of one draw of 200 requests. Analysis §53.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.evaluate import Evaluator  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.masks import union  # noqa: E402

TASKS = ("refseg", "reaseg")
RESAMPLES = 10_000


def request_ious(pred, root: Path) -> tuple[list[dict], list[float]]:
    coco, requests = shapes.load_dataset(root)
    files = {im["id"]: root / im["file_name"] for im in coco["images"]}
    scorer, chosen, ious = Evaluator(coco), [r for r in requests if r["task"] in TASKS], []
    for r in chosen:
        out = pred.predict(files[r["image_id"]], r["task"], r["text"], r["prompts"])
        mask = union([s.mask for s in out.official_segments], out.image_size)
        ious.append(iou(mask, scorer.targets_mask(r["targets"], out.image_size)))
    return chosen, ious


def main(argv=None) -> int:
    (plain_dir, look_dir), pred = folders_and_predictor(__doc__, argv)
    plain_requests, plain = request_ious(pred, Path(plain_dir))
    look_requests, look = request_ious(pred, Path(look_dir))
    keys = [[(r["task"], r["text"], r["image_id"], r["targets"]) for r in rs] for rs in (plain_requests, look_requests)]
    if keys[0] != keys[1]:
        sys.exit("the folders hold different requests: write both from one seed with dataset version 3 or later")
    rng = np.random.default_rng(0)
    for task in TASKS:
        at = [i for i, r in enumerate(plain_requests) if r["task"] == task]
        a, b = np.array([look[i] for i in at]), np.array([plain[i] for i in at])
        diff = a - b
        boots = diff[rng.integers(0, len(diff), (RESAMPLES, len(diff)))].mean(1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        print(f"{task}: look {a.mean():.4f}, plain {b.mean():.4f}, difference {diff.mean():+.4f} "
              f"(95 % interval {lo:+.4f} to {hi:+.4f}); misses (IoU < 0.5) {(a < 0.5).sum()} and {(b < 0.5).sum()} "
              f"of {len(at)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
