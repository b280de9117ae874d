"""Issue 10: which reasoning sentences does the embedded model get wrong, and how?

    python scripts/analysis/reaseg_forms.py --data DIR [DIR ...] [--model DIR]

Runs every reaseg request of shapes-world folders through `Predictor.predict` and splits them by the
sentence's form (`shapes.requests`: a riddle naming a shape's geometry, the largest / smallest shape,
the leftmost / rightmost / topmost / bottom-most shape). For each form: the mean IoU of the official
mask against the truth, and where the mask went: onto the right thing (IoU >= 0.5), onto another
thing of the scene (a reasoning failure: the sentence was read as the wrong object), or neither (a
mask failure: empty, a fragment, or several things). For the place forms, where the mask went onto
another thing: how often that thing was the runner-up along the sentence's axis (a near miss) rather
than one further from the edge.
"""

from __future__ import annotations

import collections
import sys

import numpy as np

sys.path.insert(0, ".")
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.shapes.requests import EXTREMES, SHAPE_RIDDLES  # noqa: E402

RIDDLE_SHAPES = {text: shape for shape, text in SHAPE_RIDDLES.items()}


def form(text: str) -> str:
    """"riddle: star", "size: largest", "place: leftmost" for a reaseg sentence."""
    if text in RIDDLE_SHAPES:
        return f"riddle: {RIDDLE_SHAPES[text]}"
    word = text.split()[1]
    return f"place: {word}" if word in EXTREMES else f"size: {word}"


def place_rank(word: str, chosen: int, masks: dict[int, np.ndarray]) -> int:
    """1 for the thing most to the side `word` names ("leftmost", ...), 2 for the runner-up, ...:
    where the thing `chosen` (an id of `masks`) stands."""
    axis, sign = EXTREMES[word]
    key = {i: sign * np.nonzero(m)[1 - axis].mean() for i, m in masks.items()}  # smaller: further that way
    return sorted(key.values()).index(key[chosen]) + 1


def main(argv=None) -> None:
    folders, predictor = folders_and_predictor(__doc__, argv)

    rows = collections.defaultdict(list)  # form → [(iou, outcome)]
    ranks = []  # place forms onto another thing: that thing's rank along the axis
    for image, r, of_image in shapes.task_requests(folders, "reaseg"):
        pred = predictor.predict(image, "reaseg", r["text"])
        mask = union([s.mask for s in pred.official_segments], image.shape[:2])
        truths = {i: shapes.annotation_mask(a) for i, a in of_image.items() if "colour" in a}
        overlaps = {i: iou(mask, m) for i, m in truths.items()}
        best = max(overlaps, key=overlaps.get)
        outcome = "right" if overlaps[best] >= 0.5 and best in r["targets"] else (
            "other thing" if overlaps[best] >= 0.5 else "no thing")
        score = iou(mask, union((truths[i] for i in r["targets"]), image.shape[:2]))
        kind = form(r["text"])
        rows[kind].append((score, outcome))
        if outcome == "other thing" and kind.startswith("place"):
            ranks.append(place_rank(kind.split()[-1], best, truths))

    print(f"{'form':<22} {'n':>4} {'mIoU':>6} {'right':>6} {'other thing':>12} {'no thing':>9}")
    everything = [x for v in rows.values() for x in v]
    for name, got in sorted(rows.items()) + [("all", everything)]:
        outcomes = collections.Counter(o for _, o in got)
        print(f"{name:<22} {len(got):>4} {np.mean([s for s, _ in got]):>6.3f} "
              + " ".join(f"{outcomes[o] / len(got):>{w}.2f}" for o, w in
                         (("right", 6), ("other thing", 12), ("no thing", 9))))
    if ranks:
        print(f"place forms onto another thing: {len(ranks)}; that thing was the runner-up along the axis "
              f"{np.mean([r == 2 for r in ranks]):.2f}, further from the edge {np.mean([r > 2 for r in ranks]):.2f}")


if __name__ == "__main__":
    main()
