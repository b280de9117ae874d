"""Where the LLM's attention looks while a caption names a thing, and the training-only term `ground`.

A grounded caption names its things one phrase at a time ("<p>a large blue star</p>"). Teacher-forced,
the first phrase's words are right 0.90 of the time, the later phrases' 0.66, and their shape words
0.79 against 0.93, large and small things alike (`scripts/analysis/caption_attention.py`): the later a
phrase, the less its words are read off the thing it names. `ground` asks one head of one LLM layer,
at the positions that predict a phrase's size, colour and shape words, to put its weight on the SAM
image tokens of that phrase's thing (those whose cell it covers by `TOKEN_COVER`): supervised
attention, so that the words are looked up on the right thing.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from transformers.models.qwen3.modeling_qwen3 import rotate_half

from ..modeling.config import IMAGE_TOKEN_INDEX
from ..modeling.model import mark_ids
from .samples import TOKEN_COVER

GROUND_LAYER = 3  # the LLM's last layer: what its head reads goes straight to the word predicted
GROUND_HEAD = 1  # at the shape word it already looks at the named thing most (0.62, later phrases 0.47)


class AttentionInputs:
    """Keeps, during a forward of the LLM, what the attention of each layer in `layers` is given (its
    normed input states and rotary cos / sin), so that attention weights can be recomputed for a few
    rows while the forward itself keeps its fast kernel. Use as a context manager."""

    def __init__(self, llm_model, layers):
        self.inputs: dict[int, tuple] = {}
        self._attn = {i: llm_model.layers[i].self_attn for i in layers}
        self._handles = []

    def __enter__(self):
        self._handles = [a.register_forward_pre_hook(partial(self._keep, i), with_kwargs=True)
                         for i, a in self._attn.items()]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()

    def _keep(self, layer, module, args, kwargs):
        self.inputs[layer] = (kwargs["hidden_states"], kwargs["position_embeddings"])

    def weights(self, layer: int, b: int, rows: list[int]) -> torch.Tensor:
        """[heads, len(rows), T]: layer `layer`'s causal attention weights of sequence `b` at `rows`."""
        attn = self._attn[layer]
        hidden, (cos, sin) = self.inputs[layer]
        hd, groups = attn.head_dim, attn.num_key_value_groups
        x = hidden[b]
        q = attn.q_norm(attn.q_proj(x[rows]).view(len(rows), -1, hd))  # [R, H, hd]
        k = attn.k_norm(attn.k_proj(x).view(x.shape[0], -1, hd))  # [T, H_kv, hd]
        cos, sin = cos[0], sin[0]  # [T, hd]: the same positions in every sequence of the batch
        rows_t = torch.tensor(rows, device=x.device)
        q = q * cos[rows_t, None] + rotate_half(q) * sin[rows_t, None]
        k = (k * cos[:, None] + rotate_half(k) * sin[:, None]).repeat_interleave(groups, dim=1)
        scores = torch.einsum("rhd,thd->hrt", q, k).float() * attn.scaling
        future = torch.arange(x.shape[0], device=x.device)[None, :] > rows_t[:, None]
        return scores.masked_fill(future, float("-inf")).softmax(-1)


def phrase_rows(ids: list[int], p_open: int) -> list[tuple[int, int]]:
    """(position, phrase index) of each position whose next token is a phrase's size, colour or shape
    word ("<p> a large blue star </p>": the positions of "a", "large" and "blue")."""
    return [(j + k, n) for j, n in enumerate(mark_ids(ids, p_open)) if n >= 0 for k in (1, 2, 3)
            if j + k + 1 < len(ids)]


def covered_tokens(mask: torch.Tensor, grid: int | tuple) -> torch.Tensor:
    """[cells] bool: the SAM tokens (a (rows, cols) grid; a side for a square) whose cell the canvas mask
    [H, W] covers by `TOKEN_COVER`."""
    return F.adaptive_avg_pool2d(mask[None, None].float(), grid).flatten() >= TOKEN_COVER


def first_sam_token(ids: list[int], num_sam: int) -> int:
    """The position of the first SAM token in an expanded id sequence (SigLIP's tokens come first)."""
    return ids.index(IMAGE_TOKEN_INDEX) + ids.count(IMAGE_TOKEN_INDEX) - num_sam


def thing_mass(weights: torch.Tensor, first_sam: int, targets: torch.Tensor) -> torch.Tensor:
    """[..., R]: the attention weight `weights` [..., R, T] puts on each row's SAM tokens `targets`
    [R, cells] (`covered_tokens`), the SAM tokens starting at position `first_sam`."""
    return (weights[..., first_sam: first_sam + targets.shape[-1]] * targets).sum(-1)


def ground_loss(tap: AttentionInputs, samples, expanded, p_open: int, grid: tuple,
                is_thing) -> torch.Tensor | None:
    """Mean −log of the weight `GROUND_HEAD` puts on the named thing's SAM tokens (a (rows, cols) grid),
    over every caption phrase that names a thing (`is_thing(sample, phrase)`); None when the batch has none."""
    num_sam = grid[0] * grid[1]
    terms = []
    for b, (s, ids) in enumerate(zip(samples, expanded)):
        if s.task != "gcgseg":
            continue
        rows = [(r, n) for r, n in phrase_rows(ids, p_open) if is_thing(s, n)]
        if not rows:
            continue
        w = tap.weights(GROUND_LAYER, b, [r for r, _ in rows])[GROUND_HEAD]  # [R, T]
        targets = torch.stack([covered_tokens(s.masks[n], grid) for _, n in rows])  # [R, cells]
        mass = thing_mass(w, first_sam_token(ids, num_sam), targets)
        terms.append(-torch.log(mass.clamp_min(1e-6)))
    return torch.cat(terms).mean() if terms else None
