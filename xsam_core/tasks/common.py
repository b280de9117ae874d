"""What the task modules share: random choices, decoding inputs, and post-processing primitives."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..inference.processing import canvas_shape


class Choices:
    """Where the official demo draws random numbers: class order, question template, region sampler.

    With a seed the draws replay the official demo's (`random.seed(seed); torch.manual_seed(seed)`:
    same calls, same order). Without one the default is deterministic: classes in the order typed,
    the first question template, and the sampler's random points drawn from a generator seeded 0
    for every request, so the same request always gives the same answer.
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.rng = random.Random(seed) if seed is not None else None
        self.generator = torch.Generator().manual_seed(seed if seed is not None else 0)

    def shuffle(self, items: list) -> list:
        return self.rng.sample(items, len(items)) if self.rng else list(items)

    def template(self, templates: list[str]) -> str:
        return self.rng.choice(templates) if self.rng else templates[0]

    def image_draw(self) -> None:
        """The official SAM processor draws one `random.random()` (an unused flip decision)."""
        if self.rng:
            self.rng.random()


@dataclass
class Segment:
    mask: np.ndarray  # bool [H, W] at the original image size
    label: str
    score: float
    category_id: int = 0  # index into the request's classes / phrases / regions
    isthing: bool = True


@dataclass
class TaskOutput:
    segments: list = field(default_factory=list)
    label_map: np.ndarray | None = None  # the official post-processed map, when the task has one
    extra: dict = field(default_factory=dict)
    rejected: list = field(default_factory=list)  # official outputs scoring under the threshold: not shown


@dataclass
class DecodeContext:
    """Inputs of a task's post-processing (batch index first everywhere)."""

    class_logits: torch.Tensor  # [B', Q, K] (K−1 conditions + background)
    lowres: torch.Tensor  # [B', Q, h, w] the decoder's last mask logits
    canvas_size: tuple  # (H, W): the padded SAM canvas that mask logits are upsampled to
    scaled: tuple  # (h, w) of the image on the canvas
    original: tuple  # (H0, W0)
    threshold: float
    labels: list  # one name per condition
    meta: dict = field(default_factory=dict)
    prompt_masks: list = field(default_factory=list)  # per region: bool [H0, W0]
    negative_points: list = field(default_factory=list)  # [(x, y)] in original pixels
    snap: object = None  # an `edges.EdgeSnap` where the model snaps mask edges to the image

    def to_original(self, x: torch.Tensor, logits: bool = True, snap: bool = True) -> torch.Tensor:
        """Canvas maps [N, H, W] (`logits`, or other scores) at the original size, snapped to the
        image's edges where the model does so (and `snap` asks for it)."""
        y = to_original(x, self.scaled, self.original)
        return y if self.snap is None or not snap else self.snap(y, logits)

    def canvas(self, b: int, queries=None) -> torch.Tensor:
        """Mask logits of `queries` (all when None) upsampled to the canvas ([n, H, W]).

        Queries are upsampled independently of each other, so upsampling only those a task keeps
        gives the official numbers at a fraction of the cost (the official code upsamples all 200,
        for all 10 decoder predictions)."""
        x = self.lowres[b] if queries is None else self.lowres[b, queries]
        return to_canvas(x[None], self.canvas_size)[0]


def to_canvas(mask_logits: torch.Tensor, canvas: int | tuple) -> torch.Tensor:
    """Low-resolution mask logits [B, Q, h, w] → the padded SAM canvas [B, Q, H, W] (bilinear); `canvas`
    is its side (a square) or (H, W)."""
    return F.interpolate(mask_logits, size=canvas_shape(canvas), mode="bilinear", align_corners=False)


def to_original(x: torch.Tensor, scaled, original, mode: str = "bilinear") -> torch.Tensor:
    """Crop the canvas to the image and resize to the original size ([N, H, W] → [N, H0, W0])."""
    h, w = scaled
    x = x[:, :h, :w].float()[None]
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x, size=tuple(original), mode=mode, **kw)[0]


def class_probs(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over conditions + background, background dropped → [Q, C]."""
    return logits.float().softmax(-1)[..., :-1]


def covers_negative(mask: np.ndarray, points) -> bool:
    return any(mask[int(y), int(x)] for x, y in points)


def topk_pairs(ctx: DecodeContext, b: int = 0) -> list[tuple[int, int, float]]:
    """Mask2Former instance inference's candidates: top-k over (query, class) with k = Q, in the order
    torch's unsorted top-k returns them (ties downstream resolve by that order, as officially).
    Returns [(query, class, class probability)]."""
    probs = class_probs(ctx.class_logits[b])  # [Q, C]
    num_classes = probs.shape[1]
    scores, idx = probs.flatten().topk(probs.shape[0], sorted=False)
    return [(i // num_classes, i % num_classes, s) for s, i in zip(scores.tolist(), idx.tolist())]


def query_mask(ctx: DecodeContext, query: int, b: int = 0, snap: bool = True) -> tuple[np.ndarray, float]:
    """One query's binary mask (logit > 0) at the original size and its mean probability inside."""
    logits = ctx.to_original(ctx.canvas(b, [query]), snap=snap)[0]
    mask = logits > 0
    return mask.cpu().numpy(), float((logits.sigmoid() * mask).sum() / (mask.sum() + 1e-6))


def instance_predictions(ctx: DecodeContext, b: int = 0) -> list[tuple[np.ndarray, int, float]]:
    """Instances scoring ≥ threshold, score = class probability × mean mask probability (spec §4.2).

    Only pairs whose class probability reaches the threshold are resized to full resolution: the
    mask factor is ≤ 1, so no other pair can pass."""
    out = []
    for query, cls, prob in topk_pairs(ctx, b):
        if prob >= ctx.threshold:
            mask, mask_score = query_mask(ctx, query, b)
            if prob * mask_score >= ctx.threshold:
                out.append((mask, cls, prob * mask_score))
    return out


def box_iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
