"""Issue 10: do the place sentences ("the leftmost shape", ...) get conditions of their own, and is the
thing the mask lands on the one they name?

    python scripts/analysis/place_conditions.py [--model DIR] [--n 40] [--seed 31337]

On `--n` fresh plain scenes of three to five things, asks each place sentence whose answer is clear by
the generator's margin, and prints per sentence where the mask went (the named thing, the runner-up
along the sentence's axis, a thing further from that edge, or none of them), then the mean cosine
between the decoder conditions the four sentences get on the same image (`XSamModel.phrase_conditions`):
1.0 means the model cannot tell the two sentences apart whatever the image holds. Last, whether the
decoder could answer with a better condition: per sentence, one fixed vector fitted on the first two
thirds of the scenes (scored as the class head scores a query: cosine to the condition minus cosine
to the background row; the queries that cover the named thing by training's rule, `covering_queries`,
should win), and how often the winning query covers the named thing in the last third, against the
model's own conditions on the same queries.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, ".")
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import sam_mask, sam_pixels  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.shapes.requests import EXTREMES, RELATION_MARGIN  # noqa: E402
from xsam_core.shapes.scenes import generate_scene  # noqa: E402
from xsam_core.training.losses import covering_queries  # noqa: E402

OUTCOMES = ("right", "runner-up", "further", "none")


def wins(queries: torch.Tensor, cond: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """[Q] how the class head ranks the queries for `cond` (the logit scale aside)."""
    q = F.normalize(queries, dim=-1)
    return q @ F.normalize(cond, dim=0) - q @ F.normalize(bg, dim=0)


def fit_condition(rows: list, start: torch.Tensor, bg: torch.Tensor, scale: float) -> torch.Tensor:
    """The condition under which the queries on the named thing (rows: (queries, positives)) win."""
    cond = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([cond], lr=0.05)
    for _ in range(300):
        logits = [scale * wins(q, cond, bg) for q, _ in rows]
        loss = torch.stack([z.logsumexp(0) - z[pos].logsumexp(0) for z, (_, pos) in zip(logits, rows)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return cond.detach()


def hit_rate(rows: list, conds: list, bg: torch.Tensor) -> float:
    return float(np.mean([bool(pos[wins(q, c, bg).argmax()]) for (q, pos), c in zip(rows, conds)]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=31337)
    args = ap.parse_args(argv)
    predictor = Predictor.load(args.model)
    segmentor = predictor.model.segmentor
    seen = {}
    decode = segmentor.forward

    def keep(*a, **k):  # the decoder pass of the request being answered: reaseg's conditions are [1, 2, D]
        out = decode(*a, **k)
        seen.update(cond=a[1][0, 0].detach().float(), bg=a[1][0, -1].detach().float(),
                    queries=out.last_hidden[:, 0].detach().float(), masks=out.mask_logits_lowres[-1][0].detach())
        return out

    segmentor.forward = keep
    rng = np.random.default_rng(args.seed)
    outcomes = collections.defaultdict(list)
    cosines = collections.defaultdict(list)
    rows = collections.defaultdict(list)  # sentence -> (queries, positives, the model's condition)
    backgrounds = []
    for _ in range(args.n):
        scene = generate_scene(rng, n_things=int(rng.integers(3, 6)))
        sam, scaled = sam_pixels(Image.fromarray(scene.image), predictor.config.sam_processor)
        margin = RELATION_MARGIN * min(scene.image.shape[:2])
        by_word = {}
        for word, (axis, sign) in EXTREMES.items():
            pred = predictor.predict(scene.image, "reaseg", f"the {word} shape")
            by_word[word] = seen["cond"]
            backgrounds.append(seen["bg"])
            order = sorted(scene.objects, key=lambda t: sign * t.centroid[axis])  # that edge first
            if sign * (order[1].centroid[axis] - order[0].centroid[axis]) < margin:
                continue  # no clear answer: only the condition counts
            mask = union([s.mask for s in pred.official_segments], scene.image.shape[:2])
            overlaps = [iou(mask, t.mask) for t in order]
            best = int(np.argmax(overlaps))
            outcomes[word].append(OUTCOMES[min(best, 2)] if overlaps[best] >= 0.5 else "none")
            covers = covering_queries(seen["masks"], sam_mask(order[0].mask, scaled, tuple(sam.shape[-2:]))[None])[:, 0]
            if covers.any():
                rows[word].append((seen["queries"], covers, seen["cond"]))
        for a, b in itertools.combinations(EXTREMES, 2):
            cosines[a, b].append(torch.cosine_similarity(by_word[a], by_word[b], dim=0).item())

    print(f"{'sentence':<14} {'n':>3} " + " ".join(f"{o:>9}" for o in OUTCOMES))
    for word in EXTREMES:
        got = collections.Counter(outcomes[word])
        n = len(outcomes[word])
        print(f"{word:<14} {n:>3} " + " ".join(f"{got[o] / max(n, 1):>9.2f}" for o in OUTCOMES))
    print("\nmean cosine between the conditions of two sentences on the same image")
    for (a, b), values in cosines.items():
        print(f"{a:>12} / {b:<12} {np.mean(values):.3f}")
    bg = torch.stack(backgrounds).mean(0)
    scale = segmentor.logit_scale.exp().item()
    print("\nthe named thing's query wins, held-out third: the model's conditions / one fitted condition")
    for word, got in rows.items():
        cut = len(got) * 2 // 3
        train = [(q, pos) for q, pos, _ in got[:cut]]
        test = [(q, pos) for q, pos, _ in got[cut:]]
        fitted = fit_condition(train, torch.stack([c for *_, c in got[:cut]]).mean(0), bg, scale)
        print(f"{word:<14} {len(test):>3} {hit_rate(test, [c for *_, c in got[cut:]], bg):.2f} / "
              f"{hit_rate(test, [fitted] * len(test), bg):.2f}")


if __name__ == "__main__":
    main()
