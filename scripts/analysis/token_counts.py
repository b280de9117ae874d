"""Issue 10: do the image tokens the LLM reads hold the count, where chat cannot give it?

    python scripts/analysis/token_counts.py [--model DIR] [--scenes 200] [--seed 99]

Chat counts one of a kind but not two (analysis §35). This reads a count from the image tokens without
the LLM: the model's training-only token head names the shape of each of SAM's tokens (its grid on the
SAM canvas), and the connected groups of tokens named some shape are counted, each as its most named
shape (scipy.ndimage.label): a crude read-out, since touching shapes make one group.
Printed per true count of a shape (0 = absent), and per number of shapes in the scene, how often that
read-out is right; chat's own answers on the same scenes are `shape_counts.py` and `chat_count.py`.
If the tokens count where chat does not, the gap is in the LLM's reading; if not, in the image side.
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.inference.predictor import EMBEDDED_MODEL, Predictor  # noqa: E402
from xsam_core.training.losses import TokenHead  # noqa: E402


def named_tokens(predictor: Predictor, head: TokenHead, image: np.ndarray) -> np.ndarray:
    """The token head's shape index (6 = none) for each of SAM's tokens, as their (rows, cols) grid."""
    seg_map = predictor.encode(image)[0].encoding.seg_map  # [rows, cols, D]: SAM's tokens as the LLM gets them
    return head.logits(seg_map.float())[0].argmax(-1).numpy()


def read_counts(named: np.ndarray) -> collections.Counter:
    """Shape → how many connected groups of tokens named some shape have it as their most named shape
    (a stray token named otherwise inside a shape does not make a second one)."""
    groups, n = ndimage.label(named < len(shapes.SHAPES))
    return collections.Counter(shapes.SHAPES[np.bincount(named[groups == g]).argmax()] for g in range(1, n + 1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(EMBEDDED_MODEL), help="a model folder with the training heads' state.pt")
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=99)
    args = ap.parse_args(argv)
    predictor = Predictor.load(args.model)
    predictor.model.float()  # the token head's dtype
    head = TokenHead(predictor.config.llm_hidden)
    head.load_state_dict(torch.load(f"{args.model}/state.pt", weights_only=False, map_location="cpu")["tokens"])
    per_shape = collections.defaultdict(lambda: [0, 0])  # true count of a shape → [right, asked]
    per_scene = collections.defaultdict(lambda: [0, 0])  # things in the scene → [right, scenes]
    rng = np.random.default_rng(args.seed)
    with torch.no_grad():
        for _ in range(args.scenes):
            scene = shapes.generate_scene(rng)
            truth = collections.Counter(t.shape for t in scene.objects)
            named = named_tokens(predictor, head, scene.image)
            read = read_counts(named)
            for shape in shapes.SHAPES:
                per_shape[truth[shape]][0] += read[shape] == truth[shape]
                per_shape[truth[shape]][1] += 1
            per_scene[len(scene.objects)][0] += sum(read.values()) == len(scene.objects)
            per_scene[len(scene.objects)][1] += 1
    grid = "x".join(map(str, named.shape))
    print(f"{args.model}: {args.scenes} scenes (seed {args.seed}), SAM token grid {grid} (the last scene)")
    for title, table in (("count of a shape", per_shape), ("shapes in the scene", per_scene)):
        print(f"  {title}: " + ", ".join(f"{n}: {r / t:.2f} of {t}" for n, (r, t) in sorted(table.items())))


if __name__ == "__main__":
    main()
