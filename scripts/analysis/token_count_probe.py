"""Issue 10: is the count in the image tokens? A small probe trained to read it from them says.

    python scripts/analysis/token_count_probe.py [--model DIR] [--train 1500] [--test 300] [--epochs 40]
        [--dim 64] [--layers 1] [--tokens all|siglip|sam]

Chat counts all shapes right up to four and fails at five and six (analysis §34-36). This encodes
scenes with 1-6 shapes (as many of each number) into the image tokens the LLM reads (SigLIP's and SAM's,
`encode_images`, or only one of the two), and trains a probe on them: a linear map to `--dim` dims,
`--layers` self-attention layers over the tokens with a learnt summary token, and a linear read-out of
the number of shapes. Printed: the probe's
accuracy on held-out scenes by number of shapes, next to nothing else (chat's is `chat_count.py`'s). A
probe smaller than the LLM that counts five and six where chat does not says the count is there and the
LLM does not read it; one that fails says nothing about the LLM, only that this probe could not.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.inference.predictor import EMBEDDED_MODEL, Predictor  # noqa: E402


class CountProbe(nn.Module):
    def __init__(self, width: int, dim: int = 64, layers: int = 1):
        super().__init__()
        self.inp = nn.Linear(width, dim)
        self.summary = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.0, batch_first=True)
        self.layer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(dim, shapes.MAX_THINGS + 1)

    def forward(self, tokens: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.summary.expand(len(tokens), -1, -1), self.inp(tokens)], dim=1)
        pad = torch.cat([torch.zeros(len(pad), 1, dtype=torch.bool), pad], dim=1)
        return self.out(self.layer(x, src_key_padding_mask=pad)[:, 0])


def encode(predictor: Predictor, n: int, rng: np.random.Generator, part: str = "all"
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n scenes, as many of each number of shapes: tokens [n, N, D] (zero-padded), pad mask, counts.
    `part`: all image tokens, or only SigLIP's or SAM's."""
    rows, counts = [], []
    for i in range(n):
        scene = shapes.generate_scene(rng, n_things=1 + i % shapes.MAX_THINGS)
        enc = predictor.encode(scene.image)[0].encoding
        tokens, n_sam = enc.image_tokens[0].float(), enc.seg_map.shape[0] * enc.seg_map.shape[1]
        rows.append({"all": tokens, "siglip": tokens[:-n_sam], "sam": tokens[-n_sam:]}[part])
        counts.append(len(scene.objects))
    longest = max(len(r) for r in rows)
    tokens = torch.zeros(n, longest, rows[0].shape[1])
    pad = torch.ones(n, longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        tokens[i, : len(r)], pad[i, : len(r)] = r, False
    return tokens, pad, torch.tensor(counts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(EMBEDDED_MODEL))
    ap.add_argument("--train", type=int, default=1500)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--dim", type=int, default=64, help="the probe's width")
    ap.add_argument("--layers", type=int, default=1, help="the probe's self-attention layers")
    ap.add_argument("--tokens", choices=["all", "siglip", "sam"], default="all", help="which image tokens it reads")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    predictor = Predictor.load(args.model)
    predictor.model.float()  # tokens as float32, the probe's dtype
    rng = np.random.default_rng(args.seed)
    train, test = encode(predictor, args.train, rng, args.tokens), encode(predictor, args.test, rng, args.tokens)
    scale = train[0][~train[1]].std()  # tokens to about unit scale
    probe = CountProbe(train[0].shape[-1], args.dim, args.layers)
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=0.01)
    for epoch in range(args.epochs):
        for batch in torch.randperm(args.train).split(32):
            loss = nn.functional.cross_entropy(probe(train[0][batch] / scale, train[1][batch]), train[2][batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        got = probe(test[0] / scale, test[1]).argmax(-1)
        seen = probe(train[0] / scale, train[1]).argmax(-1)
    print(f"{args.model}: probe ({args.dim} wide, {args.layers} layer{'s' * (args.layers > 1)}, {args.tokens} tokens) trained on "
          f"{args.train} scenes for {args.epochs} epochs, tested on {args.test}")
    print(f"  train accuracy {(seen == train[2]).float().mean():.3f}; held-out by number of shapes: " + ", ".join(
        f"{k}: {(got[test[2] == k] == k).float().mean():.2f}" for k in range(1, shapes.MAX_THINGS + 1)))


if __name__ == "__main__":
    main()
