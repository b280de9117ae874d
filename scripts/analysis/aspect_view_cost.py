"""Issue 10: what a SAM view that keeps an elongated image's aspect would cost the image encoding.

    python scripts/analysis/aspect_view_cost.py [--views 128x128 64x224 64x256] [--rounds 2] [--repeats 25]

A caption names a thing's shape right about half the time when the thing is under one 8-px patch of
SAM's square 128-px view (analysis §21), and an elongated image leaves most of its things that small.
A view that keeps the aspect within SAM's patch budget (a 3.5:1 image at 224 x 64, a 28 x 8 grid)
enlarges them 1.75x. This times the shipped model's image encoding (SigLIP, SAM's encoder, the
projectors, connector and pixel decoder: `XSamModel.encode_images`) at each view, SAM's absolute
positions resized to the view's grid as the model does for any canvas (`XSegmentor._positions`);
views alternate within each round so that machine noise falls on all alike. Not a trained model's
answers: the timing and the shapes only (image tokens for the LLM, mask-feature grid).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

sys.path.insert(0, ".")
from xsam_core.inference.predictor import Predictor  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--views", nargs="+", default=["128x128", "64x224", "64x256"], help="HEIGHTxWIDTH, multiples of 8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=25)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    predictor = Predictor.load(None)
    model = predictor.model
    siglip = torch.randn(1, 3, model.config.vision["image_size"], model.config.vision["image_size"])

    def encode(h: int, w: int) -> dict:
        pixels, runs = torch.randn(1, 3, h, w), []
        with torch.no_grad():
            for _ in range(3):  # warm-up
                model.encode_images(siglip, pixels)
            for _ in range(args.repeats):
                runs.append({})  # the Predictor's own stage timer, as a request's timings are taken
                enc = model.encode_images(siglip, pixels, lambda stage: predictor._stage(runs[-1], stage))
        return {"sam ms": round(statistics.median(r["sam"] for r in runs), 1),
                "pixel decoder ms": round(statistics.median(r["pixel_decoder"] for r in runs), 1),
                "image tokens": enc.image_tokens.shape[1], "mask grid": tuple(enc.pixels.mask_features.shape[-2:])}

    for r in range(args.rounds):
        for view in args.views:
            h, w = map(int, view.split("x"))
            print(f"round {r + 1}  {h} x {w}: {encode(h, w)}")


if __name__ == "__main__":
    main()
