"""Issue 10: a look's gap from plain, request by request, with its uncertainty.

    python scripts/analysis/look_gap.py --data runs/robust200v3/plain runs/robust200v3/jpeg [...] [--model DIR]

Folders written from the same seed (`robustness --n 200 --seed 987654321 --data runs/robust200v3`), the
first plain, each other one a look. For referring, reasoning and the grounded captions' objects named
right: both scores, their difference and a 95 % bootstrap interval of it (10,000 resamples). Where the
folders hold the same requests (a look that keeps the geometry, dataset version 3 or later) the requests
are resampled as pairs, so the interval is that of the look alone; otherwise (size, aspect) each folder
is resampled on its own. A cell near the issue's −0.05 can so be told from the spread of one draw.
Analysis §53.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.evaluate import Evaluator  # noqa: E402

# task → (its evaluator's metric, what one request contributes as (score, weight))
CELLS = {
    "refseg": ("miou", lambda r: (r["miou"], 1)),
    "reaseg": ("miou", lambda r: (r["miou"], 1)),
    "gcgseg": ("objects named", lambda r: (r.get("object_recall", 0) * r["things"], r["things"])),
}
RESAMPLES = 10_000


def request_scores(pred, root: Path) -> dict[str, tuple[list, np.ndarray]]:
    """task → (its requests' keys, [n, 2] of (score, weight))."""
    coco, requests = shapes.load_dataset(root)
    files = {im["id"]: root / im["file_name"] for im in coco["images"]}
    thing_ids = {c["id"] for c in coco["categories"] if c["isthing"]}
    is_thing = {a["id"]: a["category_id"] in thing_ids for a in coco["annotations"]}
    out = {}
    for task, (_, contribution) in CELLS.items():
        keys, rows = [], []
        for r in (r for r in requests if r["task"] == task):
            ev = Evaluator(coco)  # one request's own scores, by the same rules as `evaluate`
            ev.add(r, pred.predict(files[r["image_id"]], r["task"], r["text"], r["prompts"]))
            result = next(iter(ev.results().values()))
            result["things"] = sum(is_thing[p["targets"][0]] for p in r.get("phrases", []))
            keys.append((r["text"], r["image_id"], r.get("targets"), r.get("caption")))
            rows.append(contribution(result))
        out[task] = keys, np.array(rows, float)
    return out


def ratio(rows: np.ndarray) -> np.ndarray:
    """Score per weight over the last-but-one axis: [..., n, 2] → [...]."""
    return rows[..., 0].sum(-1) / rows[..., 1].sum(-1)


def gaps(plain: dict, look: dict) -> None:
    rng = np.random.default_rng(0)
    for task, (name, _) in CELLS.items():
        (pk, p), (lk, q) = plain[task], look[task]
        paired = pk == lk
        pi = rng.integers(0, len(p), (RESAMPLES, len(p)))
        qi = pi if paired else rng.integers(0, len(q), (RESAMPLES, len(q)))
        boots = ratio(q[qi]) - ratio(p[pi])
        lo, hi = np.percentile(boots, [2.5, 97.5])
        print(f"{task} {name}: look {ratio(q):.4f}, plain {ratio(p):.4f}, difference {ratio(q) - ratio(p):+.4f} "
              f"(95 % interval {lo:+.4f} to {hi:+.4f}; {'paired' if paired else 'independent'} resampling of "
              f"{len(q)} and {len(p)} requests)")


def main(argv=None) -> int:
    (plain_dir, *look_dirs), pred = folders_and_predictor(__doc__, argv)
    plain = request_scores(pred, Path(plain_dir))
    for look_dir in look_dirs:
        print(look_dir)
        gaps(plain, request_scores(pred, Path(look_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
