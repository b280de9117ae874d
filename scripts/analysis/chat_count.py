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


def main(argv=None) -> None:
    folders, predictor = folders_and_predictor(__doc__, argv)
    answers = collections.defaultdict(collections.Counter)  # true count → answer → times
    for root in folders:
        coco, _ = shapes.load_dataset(root)
        thing_ids = {c["id"] for c in coco["categories"] if c["isthing"]}
        things = collections.Counter(a["image_id"] for a in coco["annotations"] if a["category_id"] in thing_ids)
        for image in coco["images"]:
            pred = predictor.predict(shapes.dataset_image(root, image), "chat", QUESTION)
            answers[things[image["id"]]][normalize_answer(pred.text)] += 1

    print(f"{'things':>6} {'n':>4} {'right':>6}  answers")
    right = 0
    for n, got in sorted(answers.items()):
        total, truth = sum(got.values()), shapes.NUMBER_WORDS[n]
        others = ", ".join(f"{a} {k}" for a, k in got.most_common() if a != truth)
        print(f"{n:>6} {total:>4} {got[truth] / total:>6.2f}  {others}")
        right += got[truth]
    scenes = sum(sum(got.values()) for got in answers.values())
    print(f"{'all':>6} {scenes:>4} {right / scenes:>6.3f}")


if __name__ == "__main__":
    main()
