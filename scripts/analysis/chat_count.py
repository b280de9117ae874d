"""Issue 10: how well does chat count the shapes, by how many there are?

    python scripts/analysis/chat_count.py --data DIR [DIR ...] [--model DIR]

Asks "How many shapes are there?" of every image of shapes-world folders through `Predictor.predict`
and prints, per true number of things, how many answers are right and what was answered instead:
the count's mean score hides the scenes where counting is hard (many things, small ones). The last row
is every scene: three times the count questions of the folder's chat sets, which ask it of a third.
"""

from __future__ import annotations

import collections
import sys

sys.path.insert(0, ".")
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import normalize_answer  # noqa: E402

QUESTION = "How many shapes are there?"


def held_shapes(coco: dict) -> dict[int, collections.Counter]:
    """Image id → shape → how many of it the image holds (a shapes-world folder's annotations)."""
    names = {c["id"]: c["name"] for c in coco["categories"] if c["isthing"]}
    held = collections.defaultdict(collections.Counter)
    for a in coco["annotations"]:
        if a["category_id"] in names:
            held[a["image_id"]][names[a["category_id"]]] += 1
    return held


def print_answers(answers: dict, title: str, top: int | None = None) -> dict[int, tuple[int, int]]:
    """One row per true count (`answers`: count → normalised answer → times): how many were asked, the
    share right, and the `top` most common wrong answers. Returns count → (right, asked)."""
    print(f"{title:>6} {'n':>4} {'right':>6}  answers")
    out = {}
    for n, got in sorted(answers.items()):
        total, truth = sum(got.values()), shapes.NUMBER_WORDS[n]
        others = ", ".join(f"{a} {k}" for a, k in got.most_common(top) if a != truth)
        print(f"{n:>6} {total:>4} {got[truth] / total:>6.2f}  {others}")
        out[n] = got[truth], total
    return out


def main(argv=None) -> None:
    folders, predictor = folders_and_predictor(__doc__, argv)
    answers = collections.defaultdict(collections.Counter)  # true count → answer → times
    for root in folders:
        coco, _ = shapes.load_dataset(root)
        held = held_shapes(coco)
        for image in coco["images"]:
            pred = predictor.predict(shapes.dataset_image(root, image), "chat", QUESTION)
            answers[sum(held[image["id"]].values())][normalize_answer(pred.text)] += 1

    right, asked = map(sum, zip(*print_answers(answers, "things").values()))
    print(f"{'all':>6} {asked:>4} {right / asked:>6.3f}")


if __name__ == "__main__":
    main()
