"""X-SAM's own small modules: projectors, the conv connector, the region sampler.

State-dict names follow the official checkpoint (`<name>.model.<i>.*`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def pixel_shuffle(x: torch.Tensor, scale: float, channels_first: bool = False) -> torch.Tensor:
    """InternVL-style pixel shuffle used by X-SAM; the element order matters for the weights.

    scale < 1 folds space into channels, scale > 1 unfolds channels into space.
    """
    if channels_first:
        x = x.permute(0, 2, 3, 1)
    n, h, w, c = x.shape
    if scale < 1 and (h % 2 or w % 2):  # maybe_pad: odd sizes get a zero row/column
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        n, h, w, c = x.shape
    x = x.reshape(n, h, int(w * scale), int(c / scale))
    x = x.permute(0, 2, 1, 3)
    x = x.reshape(n, int(w * scale), int(h * scale), int(c / (scale * scale)))
    x = x.permute(0, 2, 1, 3).contiguous()
    if channels_first:
        x = x.permute(0, 3, 1, 2).contiguous()
    return x


def shuffled_grid(h: int, w: int, scale: float) -> tuple[int, int]:
    """(rows, cols) that `pixel_shuffle` makes of an h × w map, an odd side padded by one first."""
    return (math.ceil(h * scale), math.ceil(w * scale)) if scale < 1 else (h, w)


class Projector(nn.Module):
    """`DynamicProjectorModel`: [pixel-shuffle] → Linear → GELU → Linear (depth 2)."""

    def __init__(self, in_dim: int, out_dim: int, downsample_ratio: float = 1.0, depth: int = 2):
        super().__init__()
        self.downsample_ratio = downsample_ratio
        in_dim = int(in_dim / downsample_ratio**2)
        layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # channels-last feature map → tokens
            if self.downsample_ratio != 1.0:
                x = pixel_shuffle(x, self.downsample_ratio)
            x = x.flatten(1, 2)
        return self.model(x)


class LayerNorm2d(nn.LayerNorm):
    """Channels-first LayerNorm with statistics in fp32 (SAM's `SamLayerNorm`, as X-SAM uses it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = ((x - mean) / torch.sqrt(var + self.eps)).to(dtype)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvConnectorLayer(nn.Module):
    """1×1 conv, LN, 3×3 conv, LN, 1×1 conv to C·s, LN, then pixel-shuffle(s): one multi-scale map."""

    def __init__(self, in_channels: int, hidden: int, scale: float):
        super().__init__()
        self.scale = scale
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), LayerNorm2d(hidden, eps=1e-6),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), LayerNorm2d(hidden, eps=1e-6),
            nn.Conv2d(hidden, int(in_channels * scale), 1, bias=False),
            LayerNorm2d(int(in_channels * scale), eps=1e-6),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x channels-last [B,H,W,C]
        x = self.model(x.permute(0, 3, 1, 2))
        return pixel_shuffle(x, self.scale, channels_first=True)


class ConvConnector(nn.Module):
    def __init__(self, in_channels: int, hidden: int, scales: list):
        super().__init__()
        self.model = nn.ModuleList(ConvConnectorLayer(in_channels, hidden, s) for s in scales)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [layer(f) for layer, f in zip(self.model, features)]


def region_sample_points(mask: torch.Tensor, num_points: int, generator: torch.Generator | None = None):
    """Pick `num_points` pixels of a binary mask as the official naive sampler does.

    Returns (normalised (y, x) points, indices into `mask.nonzero()`). More pixels than needed: a random
    subset (`randperm`); fewer: all of them plus random repeats (`randint`). Both draw from `generator`
    (None = torch's global RNG, which is what the official code uses and what a seeded replay needs).
    """
    h, w = mask.shape
    coords = mask.nonzero()
    n = coords.shape[0]
    if n == 0:
        raise ValueError("empty visual-prompt mask")
    if n > num_points:
        idx = torch.randperm(n, generator=generator)[:num_points]
    else:
        idx = torch.cat([torch.arange(n), torch.randint(0, n, (num_points - n,), generator=generator)])
    pts = coords[idx].float() / torch.tensor([h, w], dtype=torch.float32)
    return pts, idx


class RegionSampler(nn.Module):
    """X-SAM's naive max-pool sampler (parameter-free): one vector per visual-prompt mask, sampled from
    the SAM-token map. Returns (vector, the normalised points, their indices into `mask.nonzero()`)."""

    def __init__(self, num_points: int):
        super().__init__()
        self.num_points = num_points

    def forward(self, feature_map: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None):
        points, idx = region_sample_points(mask, self.num_points, generator)
        return sample_region_feature(feature_map, points.to(feature_map.device)), points, idx


def sample_region_feature(feature_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (align_corners=True, fp32) of a [h,w,C] map at (y,x) points, max-pooled → [C]."""
    grid = points.flip(-1) * 2 - 1  # (y, x) → grid_sample's (x, y) in [-1, 1]
    fmap = feature_map.permute(2, 0, 1)[None].float()
    sampled = F.grid_sample(fmap, grid[None, None].float(), mode="bilinear", align_corners=True)
    return sampled[0, :, 0].amax(dim=-1).to(feature_map.dtype)
