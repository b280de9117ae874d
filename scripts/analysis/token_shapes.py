"""Issue 10: do the image tokens the LLM reads know which shape they lie on? The run's own token head says.

    python scripts/analysis/token_shapes.py runs/v4 [--batches 10] [--cover 0.1 0.6]

Reads a run folder's `state.pt` (model and training-only token head), draws held-out batches (a seed
training never uses) and prints, for SAM's and SigLIP's tokens, how often the head names the shape
covering most of a token's cell, over cells whose shape covers at least each `--cover` share of them,
then, over cells covered at least 10 %, by the shape's painted area in SAM's 128-px view (a small shape
there is 15-23 px across) and by shape. Chance is 1/6 among the six shapes (the head may also answer
"none"). Last, the same head on the visual-prompt vectors of interactive and visual-grounding requests
(the region sampler's max over SAM's tokens, what the LLM gets for a <region>): how often its likeliest
shape is the prompted thing's, by the prompt's area on SAM's canvas (a click is a small disc).
"""

from __future__ import annotations

import argparse
import sys

import torch
from transformers import AutoTokenizer

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.modeling.config import XSamConfig  # noqa: E402
from xsam_core.modeling.model import XSamModel  # noqa: E402
from xsam_core.training.losses import TokenHead, cell_cover, token_targets  # noqa: E402
from xsam_core.training.samples import TASK_WEIGHTS, make_batch  # noqa: E402

HELD_OUT_SEED = 99


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--cover", type=float, nargs="+", default=[0.1, 0.6])
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = XSamConfig.load(f"{args.run}/config.json")
    model = XSamModel(cfg).eval()
    state = torch.load(f"{args.run}/state.pt", weights_only=False, map_location="cpu")
    model.load_state_dict(state["model"])
    head = TokenHead(cfg.llm_hidden)
    head.load_state_dict(state["tokens"])
    tokenizer = AutoTokenizer.from_pretrained(f"{args.run}/tokenizer")
    n = len(shapes.SHAPES)
    hits = {(name, c): [0, 0] for name in ("SAM", "SigLIP") for c in args.cover}
    by_area = {(name, a): [0, 0] for name in ("SAM", "SigLIP") for a in AREAS}
    by_shape = {(name, s): [0, 0] for name in ("SAM", "SigLIP") for s in shapes.SHAPES}
    with torch.no_grad():
        for k in range(args.batches):
            (batch,) = make_batch(k, HELD_OUT_SEED, 4, 1, cfg, tokenizer, TASK_WEIGHTS)  # one part: X-SAM's square SAM view
            enc = model.encode_images(batch.siglip, batch.sam, pixels=False)  # only the image tokens are read
            painted = batch.labels[:, :n].sum((-2, -1))  # [B, shapes]: pixels of each shape in SAM's view
            for name, tokens, labels in (("SAM", enc.seg_tokens, batch.labels),
                                         ("SigLIP", enc.visual_tokens, batch.siglip_labels)):
                side = int(round(tokens.shape[1] ** 0.5))
                target, _ = token_targets(labels, side)
                share = cell_cover(labels, side)[0].max(-1).values
                named = head.logits(tokens)[0].argmax(-1)
                right = named == target
                for c in args.cover:
                    _count(hits[name, c], right, (target < n) & (share >= c))
                cells = target < n  # at least TOKEN_COVER (10 %) of the cell: token_targets' "none" otherwise
                area = painted.gather(1, target.clamp(max=n - 1))  # of the cell's shape, all objects of it
                for key, (lo, hi) in AREAS.items():
                    _count(by_area[name, key], right, cells & (area >= lo) & (area < hi))
                for i, shape in enumerate(shapes.SHAPES):
                    _count(by_shape[name, shape], right, cells & (target == i))
        prompts = _prompt_vectors(model, head, cfg, tokenizer, args.batches)
    print(f"{args.run}: step {state['step']}, {args.batches} held-out batches of 4 scenes")
    for (name, c), (right, total) in hits.items():
        print(f"  {name:6s} cells >= {c:.0%} one shape: {right / max(total, 1):.3f} named right ({total} cells)")
    for title, table in (("shape's area in SAM's view (px)", by_area), ("shape", by_shape)):
        print(f"  cells >= 10 % one shape, by {title}:")
        for (name, key), (right, total) in table.items():
            print(f"    {name:6s} {key:>10s}: {right / max(total, 1):.3f} ({total} cells)")
    print("  visual-prompt vectors, prompted thing's shape named right, by the prompt's area (px):")
    for key, (right, total) in prompts.items():
        print(f"    {key:>10s}: {right / max(total, 1):.3f} ({total} prompts)")


def _prompt_vectors(model, head, cfg, tokenizer, batches: int) -> dict:
    tally = {key: [0, 0] for key in ("< 150", ">= 150", "all")}
    for k in range(batches):
        (batch,) = make_batch(k, HELD_OUT_SEED, 4, 2, cfg, tokenizer, {"intseg": 1.0, "vgdseg": 1.0})  # one part: X-SAM's square SAM view
        enc = model.encode_images(batch.siglip, batch.sam)
        for s in batch.samples:
            if not s.regions:  # the chat set drawn with them
                continue
            masks = torch.stack(s.regions)
            shape_logits = head.logits(model.region_features(enc.image(s.image), masks))[0]
            named = shape_logits[:, : len(shapes.SHAPES)].argmax(-1)  # which shape, "none" left out
            # one condition per region; its category is the prompted shape (`make_sample`)
            right = named == torch.tensor(s.cond_category)
            for mask, hit in zip(masks, right.tolist()):
                for key in ("< 150" if mask.sum() < 150 else ">= 150", "all"):
                    tally[key][0] += hit
                    tally[key][1] += 1
    return tally


AREAS = {"< 300": (0, 300), "300-1000": (300, 1000), ">= 1000": (1000, 1 << 20)}


def _count(tally: list, right: torch.Tensor, cells: torch.Tensor) -> None:
    tally[0] += int(right[cells].sum())
    tally[1] += int(cells.sum())


if __name__ == "__main__":
    main()
