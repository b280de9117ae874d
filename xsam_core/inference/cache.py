"""What the Predictor keeps per image: the encodings, the LLM's KV cache of the shared prompt prefix
(template head + image tokens) and the mask-edge filter over its pixels, in a least-recently-used cache
bounded by bytes."""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from ..modeling.model import ImageEncoding


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass
class Prefix:
    cache: DynamicCache  # KV of the prefix; never mutated (requests extend forks of it)
    hidden: torch.Tensor  # [1, Lp, H] last-layer states of the prefix

    def nbytes(self) -> int:
        return _nbytes([self.hidden]) + _nbytes(t for layer in self.cache.layers for t in (layer.keys, layer.values))

    def fork(self) -> DynamicCache:
        """A cache that starts from the prefix; appending to it leaves the prefix untouched (layers grow
        by concatenation into new tensors)."""
        fork = copy.copy(self.cache)
        fork.layers = [copy.copy(layer) for layer in self.cache.layers]
        return fork


@dataclass
class ImageEntry:
    encoding: ImageEncoding
    scaled: tuple  # (h, w) of the image on the SAM canvas
    canvas: tuple  # (H, W) of the SAM canvas
    prefixes: dict = field(default_factory=dict)  # prefix ids → Prefix
    snaps: dict = field(default_factory=dict)  # radius → EdgeSnap over the image (tasks/edges.py)

    def nbytes(self) -> int:
        return (self.encoding.nbytes() + sum(p.nbytes() for p in self.prefixes.values())
                + sum(s.nbytes() for s in self.snaps.values()))


class ByteLRU:
    """Least-recently-used cache bounded by the total bytes of its entries."""

    def __init__(self, budget: int):
        self.budget = budget
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key, entry) -> None:
        self._items[key] = entry
        self._items.move_to_end(key)
        self.shrink()

    def shrink(self) -> None:
        """Evict the oldest entries until the budget holds (the newest one always stays)."""
        while len(self._items) > 1 and sum(e.nbytes() for e in self._items.values()) > self.budget:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def image_key(img) -> str:
    """The cache key of a PIL image: a hash of its pixels and size."""
    return hashlib.blake2b(img.tobytes() + repr(img.size).encode(), digest_size=16).hexdigest()
