"""Issue 10: do the decoder's object queries know where their thing is? A linear probe says.

    python scripts/analysis/query_position.py runs/v13 [--batches 40]

"The leftmost shape" picks a query by the cosine of its last-layer state with one condition
embedding. If a query's state held its thing's x linearly, one direction of the condition space
would rank all queries by x and the leftmost would win. This reads a run folder's `state.pt`, draws
held-out training batches (a seed training never uses), takes the last-layer states of the queries
Hungarian-matched to one thing (the matcher the loss uses), and fits a ridge read-out of the thing's
centroid x, y and its √area (the reference: "the largest shape" works) on half the batches; it prints
R² on the other half.
"""

from __future__ import annotations

import argparse
import sys

import torch
from transformers import AutoTokenizer

sys.path.insert(0, ".")
from xsam_core.modeling.config import XSamConfig  # noqa: E402
from xsam_core.modeling.model import XSamModel  # noqa: E402
from xsam_core.training.losses import TrainingHeads, compute_losses, mask2former_loss, mask_centroids  # noqa: E402
from xsam_core.training.samples import TASK_WEIGHTS, make_batch  # noqa: E402

HELD_OUT_SEED = 99
ONE_THING = ("refseg", "intseg", "genseg/instance", "genseg/panoptic", "vgdseg")


def collect(model, tokenizer, batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Matched last-layer query states [N, D] and their things' (x, y, area) [N, 3]."""
    criterion = mask2former_loss(256)
    captured = {}
    criterion.matcher.register_forward_hook(lambda m, i, o: captured["indices"].append(o))
    hook = model.segmentor.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    special = model.config.special_token_ids
    states, targets = [], []
    for k in range(batches):
        (batch,) = make_batch(k, HELD_OUT_SEED, 4, 3, model.config, tokenizer, TASK_WEIGHTS)  # one part: X-SAM's square SAM view
        captured["indices"] = []
        compute_losses(model, batch, criterion, TrainingHeads(model.config), special)
        hidden = captured["out"].hidden[-1].transpose(0, 1)  # [B', Q, D]
        seg_samples = [s for s in batch.samples if s.masks]
        for b, (s, (src, tgt)) in enumerate(zip(seg_samples, captured["indices"][-1])):
            if s.task not in ONE_THING:
                continue
            for q, t in zip(src.tolist(), tgt.tolist()):
                if s.task.startswith("genseg") and s.masks[t].sum() == 0:
                    continue
                states.append(hidden[b, q])
                mask = s.masks[t]
                targets.append(torch.cat([mask_centroids(mask[None])[0], mask.mean()[None].sqrt()]))
    hook.remove()
    return torch.stack(states), torch.stack(targets)


def ridge_r2(x: torch.Tensor, y: torch.Tensor, half: int, alpha: float = 1.0) -> torch.Tensor:
    mean, std = x[:half].mean(0), x[:half].std(0) + 1e-6
    a = torch.cat([(x - mean) / std, torch.ones(len(x), 1)], 1)
    fit, test = a[:half], a[half:]
    w = torch.linalg.solve(fit.T @ fit + alpha * torch.eye(a.shape[1]), fit.T @ y[:half])
    err = ((test @ w - y[half:]) ** 2).sum(0)
    return 1 - err / ((y[half:] - y[half:].mean(0)) ** 2).sum(0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--batches", type=int, default=40)
    args = ap.parse_args()
    cfg = XSamConfig.load(f"{args.run}/config.json")
    model = XSamModel(cfg).eval()
    model.load_state_dict(torch.load(f"{args.run}/state.pt", weights_only=False, map_location="cpu")["model"])
    tokenizer = AutoTokenizer.from_pretrained(f"{args.run}/tokenizer")
    with torch.no_grad():
        states, targets = collect(model, tokenizer, args.batches)
    half = len(states) // 2
    r2 = ridge_r2(states, targets, half)
    print(f"{len(states)} matched queries ({half} to fit, {len(states) - half} to test)")
    for name, value in zip(("centroid x", "centroid y", "√area"), r2.tolist()):
        print(f"  R² {name}: {value:.3f}")


if __name__ == "__main__":
    main()
