"""Issue 10: where a caption's order chooses between two colours, by how much does the model choose?

    python scripts/analysis/caption_order.py --data DIR [DIR ...] [--model DIR]

A caption names the large things first, then by colour in the palette's order (`shapes.caption_order`),
so where two things of one size and different colours are still to be named, the next colour word is
an order decision between colours that are both in the image, not a question of what is there. The
gallery's caption makes one such decision, yellow before orange, by 0.2-0.5 logits, and runs 53 and 59
turned it (analysis §38, §40).

Feeds each gcgseg request's true caption in (teacher-forced) and, at every colour word where a later
phrase of the same size has another colour, takes the true colour's logit minus the highest logit of
those later colours: the order margin. Prints it per (said first, said later) colour pair, least first,
with how often it is under 1 logit and under 0 (the wrong colour first), and, for comparison, the true
colour's margin over the colours no thing of that size still to be named has.
"""

from __future__ import annotations

import collections
import sys

import numpy as np

sys.path.insert(0, ".")
sys.path.insert(0, "scripts/analysis")
from folders_cli import folders_and_predictor  # noqa: E402
from gcg_names import forced_logits, parse, phrase_starts  # noqa: E402

from xsam_core import shapes  # noqa: E402

NEAR = 1.0  # logits: an order margin under this is one a small change to the weights can turn


def order_margins(predictor, image, request) -> tuple[list[tuple[str, str, float]], list[float]]:
    """([(true colour, later colour, order margin)], [margin over colours still unnamed]) of a caption."""
    tok = predictor.tokenizer
    answer, logits = forced_logits(predictor, image, request["caption_grounded"])
    said = [words for p in request["phrases"] if (words := parse(p["text"]))]  # the object phrases
    colour_ids = {c: tok.convert_tokens_to_ids(c) for c in shapes.COLOURS}
    starts = phrase_starts(tok, answer)
    if len(starts) != len(said):  # a phrase's words not one token each: positions would not line up
        raise ValueError(f"{len(starts)} object phrases in the tokens, {len(said)} in the request")
    order, absent = [], []
    for k, j in enumerate(starts):
        size, colour, _ = said[k]
        row = logits[j + 3]
        later = {w[1] for w in said[k + 1:] if w[0] == size} - {colour}
        for other in later:
            order.append((colour, other, float(row[colour_ids[colour]] - row[colour_ids[other]])))
        unnamed = set(shapes.COLOURS) - later - {colour}
        absent.append(float(row[colour_ids[colour]] - max(row[colour_ids[c]] for c in unnamed)))
    return order, absent


def main(argv=None) -> None:
    folders, predictor = folders_and_predictor(__doc__, argv)
    pairs, absent = collections.defaultdict(list), []
    for image, request, _ in shapes.task_requests(folders, "gcgseg"):
        order, rest = order_margins(predictor, image, request)
        absent += rest
        for first, later, margin in order:
            pairs[first, later].append(margin)
    every = np.array([m for ms in pairs.values() for m in ms])
    print(f"{predictor.name}: {len(every)} order decisions; margin median {np.median(every):.2f}, "
          f"under {NEAR:g} {np.mean(every < NEAR):.3f}, under 0 {np.mean(every < 0):.3f}; "
          f"over unnamed colours: median {np.median(absent):.2f}, under {NEAR:g} {np.mean(np.array(absent) < NEAR):.3f} "
          f"(n={len(absent)})")
    print(f"{'first':>7} {'later':>7} {'n':>4} {'mean':>6} {'min':>6} {'<1':>5} {'<0':>5}")
    for (first, later), ms in sorted(pairs.items(), key=lambda kv: np.mean(kv[1])):
        ms = np.array(ms)
        print(f"{first:>7} {later:>7} {len(ms):>4} {ms.mean():6.2f} {ms.min():6.2f} {np.mean(ms < NEAR):5.2f} "
              f"{np.mean(ms < 0):5.2f}")


if __name__ == "__main__":
    main()
