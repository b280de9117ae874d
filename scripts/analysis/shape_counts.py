"""Issue 10: can chat count one shape ("How many star shapes are there?"), by how many of it there are?

    python scripts/analysis/shape_counts.py --data DIR [DIR ...] [--model DIR]

Asks "How many <shape> shapes are there?" (`shapes.shape_counts`' question; run 50 trained it) of every
image of shapes-world folders for each of the six shapes, through `Predictor.predict`, and prints per
true count of that shape (0 = absent) how many answers are right and what was answered instead (the
count of all shapes is `chat_count.py`'s).
"""

from __future__ import annotations

import collections
import sys

sys.path.insert(0, ".")
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import normalize_answer  # noqa: E402


def main(argv=None) -> None:
    folders, predictor = folders_and_predictor(__doc__, argv)
    answers = collections.defaultdict(collections.Counter)  # true count of the shape → answer → times
    for root in folders:
        coco, _ = shapes.load_dataset(root)
        names = {c["id"]: c["name"] for c in coco["categories"] if c["isthing"]}
        counts = collections.defaultdict(collections.Counter)  # image id → shape → count
        for a in coco["annotations"]:
            if a["category_id"] in names:
                counts[a["image_id"]][names[a["category_id"]]] += 1
        for image in coco["images"]:
            pixels, held = shapes.dataset_image(root, image), counts[image["id"]]
            for shape in shapes.SHAPES:
                pred = predictor.predict(pixels, "chat", f"How many {shape} shapes are there?")
                answers[held[shape]][normalize_answer(pred.text)] += 1

    print(f"{'count':>6} {'n':>5} {'right':>6}  answers")
    for n, got in sorted(answers.items()):
        total, truth = sum(got.values()), shapes.NUMBER_WORDS[n]
        others = ", ".join(f"{a} {k}" for a, k in got.most_common(4) if a != truth)
        print(f"{n:>6} {total:>5} {got[truth] / total:>6.2f}  {others}")
    held = {n: got for n, got in answers.items() if n}
    asked = sum(sum(got.values()) for got in held.values())
    right = sum(got[shapes.NUMBER_WORDS[n]] for n, got in held.items())
    print(f"{'held':>6} {asked:>5} {right / asked:>6.3f}  (a shape the scene holds)")


if __name__ == "__main__":
    main()
