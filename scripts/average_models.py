"""Average the weights of exported model folders of one architecture (a "model soup": runs continued
from the same checkpoint often score better averaged than either alone).

    python scripts/average_models.py --out runs/soup runs/v27-model runs/v28-model [--heads runs/v27 runs/v28]
        [--weights 2,1]

Writes the mean of every tensor (weighted by --weights, one per folder; equal by default), computed in
float32 and stored in the first folder's dtype, with the first folder's config, tokenizer and declared
layout; with --heads, also a heads-only state.pt averaged (alike) from the runs' training heads so that the
soup can be continued with --init-heads.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xsam_core.modeling.checkpoint import TOKENIZER_FILES  # noqa: E402
from xsam_core.training.train import HEAD_KEYS  # noqa: E402


def mean_of(dicts: list[dict], weights: list[float]) -> dict:
    if any(d.keys() != dicts[0].keys() for d in dicts):
        raise SystemExit("the folders hold different tensors: not one architecture")
    return {k: (sum(w * d[k].float() for w, d in zip(weights, dicts)) / sum(weights)).to(dicts[0][k].dtype)
            for k in dicts[0]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--heads", nargs="*", type=Path, default=[], help="run folders whose state.pt hold the heads")
    ap.add_argument("--weights", type=lambda s: [float(w) for w in s.split(",")],
                    help="comma-separated, one per model folder (and heads folder): a weighted mean")
    args = ap.parse_args(argv)
    weights = args.weights or [1.0] * len(args.models)
    if len(weights) != len(args.models) or (args.heads and len(args.heads) != len(weights)):
        ap.error("--weights needs one weight per model folder (and per --heads folder)")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", *TOKENIZER_FILES):  # not a model card or heads that are not the soup's
        if (args.models[0] / name).is_file():
            shutil.copy(args.models[0] / name, args.out / name)
    tensors = mean_of([load_file(m / "model.safetensors") for m in args.models], weights)
    with safe_open(args.models[0] / "model.safetensors", "pt") as first:  # the layout and format it declares
        meta = {k: v for k, v in (first.metadata() or {}).items() if k in ("format", "layout")}
    meta["averaged_from"] = ", ".join(f"{m} ({w:g})" for m, w in zip(args.models, weights))
    save_file(tensors, args.out / "model.safetensors", metadata=meta)
    if args.heads:
        states = [torch.load(h / "state.pt", weights_only=False) for h in args.heads]
        torch.save({k: mean_of([s[k] for s in states], weights) for k in HEAD_KEYS}, args.out / "state.pt")


if __name__ == "__main__":
    main()
