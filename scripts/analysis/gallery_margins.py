"""Issue 10: how close is each word the gallery's examples answer with to another word?

    python scripts/analysis/gallery_margins.py [--model DIR ...] [--below 1.5]

Runs the shapes gallery's examples that answer in words (grounded caption, chat) through
`Predictor.predict` with a hook on the LLM's output head, and prints each answer's greedy tokens with,
where the best token leads the runner-up by less than `--below` logits, the runner-up and that margin.
A margin near zero is a coin toss that any change to the weights can turn: runs that move the image
side by a little flip the gallery's caption where the shipped checkpoint leads by 0.2-0.6 (analysis §39).
"""

from __future__ import annotations

import argparse
import sys

from PIL import Image

sys.path.insert(0, ".")
from app.examples import SHAPES  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402

WORDED = ("gcgseg", "chat")


def decisions(pred: Predictor, example) -> list[tuple[int, int, float]]:
    """(chosen token, runner-up, logit margin) of each decoding step of `example`'s answer."""
    steps = []

    def record(module, inputs, logits):
        if logits.dim() == 2 and logits.shape[0] == 1:  # one decoding step (the prefill is batched by position)
            top = logits[0].float().topk(2)
            steps.append((int(top.indices[0]), int(top.indices[1]), float(top.values[0] - top.values[1])))

    hook = pred.model.llm.lm_head.register_forward_hook(record)
    try:
        pred.predict(Image.open(example.path).convert("RGB"), example.task, example.text, example.prompts or None)
    finally:
        hook.remove()
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="*", default=[None], help="model folders (default: the embedded model)")
    ap.add_argument("--below", type=float, default=1.5, help="show the runner-up where the margin is under this")
    args = ap.parse_args()
    for model in args.model:
        pred = Predictor.load(model)
        for example in (ex for ex in SHAPES if ex.task in WORDED):
            steps = decisions(pred, example)
            words = [pred.tokenizer.decode([best]) + (f" ({pred.tokenizer.decode([second])} {margin:.1f})"
                                                      if margin < args.below else "")
                     for best, second, margin in steps]
            close = sum(margin < args.below for *_, margin in steps)
            print(f"{model or 'embedded'} {example.image} {example.task}: {len(steps)} tokens, {close} under "
                  f"{args.below}, smallest margin {min(m for *_, m in steps):.2f}")
            print("   " + " | ".join(words))


if __name__ == "__main__":
    main()
