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
from chat_count import held_shapes, print_answers  # noqa: E402
from folders_cli import folders_and_predictor  # noqa: E402

from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import normalize_answer  # noqa: E402


def main(argv=None) -> None:
    folders, predictor = folders_and_predictor(__doc__, argv)
    answers = collections.defaultdict(collections.Counter)  # true count of the shape → answer → times
    for root in folders:
        coco, _ = shapes.load_dataset(root)
        held = held_shapes(coco)
        for image in coco["images"]:
            pixels = shapes.dataset_image(root, image)
            for shape in shapes.SHAPES:
                pred = predictor.predict(pixels, "chat", f"How many {shape} shapes are there?")
                answers[held[image["id"]][shape]][normalize_answer(pred.text)] += 1

    held_rows = [row for n, row in print_answers(answers, "count", top=4).items() if n]
    right, asked = map(sum, zip(*held_rows))
    print(f"{'held':>6} {asked:>4} {right / asked:>6.3f}  (a shape the scene holds)")


if __name__ == "__main__":
    main()
