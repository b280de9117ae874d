"""From the LLM's hidden states to masks: which tokens condition the mask decoder, the decoder pass,
and the task's post-processing at the original image size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..modeling.model import XSamModel, expand_ids, mark_ids, pool_by_id, span_ids
from ..tasks import Task
from ..tasks.common import DecodeContext, TaskOutput, to_original
from ..tasks.edges import EdgeSnap, snap_radius
from .processing import canvas_shape


@dataclass
class Conditions:
    """Where the phrases and <SEG> tokens sit in the sequence the LLM saw (prompt, then the fed answer)."""

    cond_ids: list[int]  # phrase index per position, -1 elsewhere
    seg_ids: list[int]  # <SEG> index per position, -1 elsewhere
    phrase_ids: list[int]  # the ids whose <p> … </p> spans name the phrases (prompt or answer)
    token_ids: list[int]  # the id at each position (image slots repeated)
    earlier_phrases: int = 0  # spans of phrase_ids that belong to earlier turns


def conditions(prompt_ids: list[int], num_image_tokens: int, generated: list[int], special: dict,
               earlier_phrases: int = 0) -> Conditions:
    """Phrases come from the answer when it has any (grounded captions), else from the prompt, where the
    first `earlier_phrases` belong to earlier turns of the conversation and condition nothing."""
    p, q, seg = special["<p>"], special["</p>"], special["<SEG>"]
    expanded = expand_ids(prompt_ids, num_image_tokens)
    fed = generated[:-1]  # the tokens fed back: their states exist
    n = len(expanded)
    if p in fed:
        return Conditions([-1] * n + span_ids(fed, p, q), [-1] * n + mark_ids(fed, seg), fed, expanded + fed)
    cond_ids = [i - earlier_phrases if i >= earlier_phrases else -1 for i in span_ids(expanded, p, q)]
    return Conditions(cond_ids + [-1] * len(fed), [-1] * n + mark_ids(fed, seg), prompt_ids, expanded + fed,
                      earlier_phrases)


def phrases(tokenizer, cond: Conditions, special: dict) -> list[str]:
    """Decoded text strictly inside each <p> … </p> of this turn."""
    ids = cond.phrase_ids
    p, q = special["<p>"], special["</p>"]
    out, start = [], None
    for i, t in enumerate(ids):
        if t == p:
            start = i + 1
        elif t == q and start is not None:
            out.append(tokenizer.decode([x for x in ids[start:i] if x >= 0]).strip())
            start = None
    return out[cond.earlier_phrases:]


def decode_masks(model: XSamModel, task: Task, encoding, hidden: torch.Tensor, cond: Conditions):
    """The conditioned mask-decoder pass → (DecoderOutput, number of conditions), or (None, why not)."""
    if max(cond.seg_ids) < 0 or max(cond.cond_ids) < 0:
        return None, "the answer holds no <SEG> token or no phrase: no masks"
    conds = model.phrase_conditions(hidden, cond.token_ids, cond.cond_ids)
    segs = pool_by_id(model.llm_projector(hidden[: len(cond.seg_ids)]), cond.seg_ids)
    bg = model.bg_embeds.weight
    n_phr = conds.shape[0]
    if task.refer:
        if segs.shape[0] not in (1, n_phr):
            return None, f"{segs.shape[0]} <SEG> tokens for {n_phr} phrases: no masks"
        cond_in = torch.cat([conds, bg]).unsqueeze(0).repeat(n_phr, 1, 1)
        return model.decode_masks(encoding, cond_in, segs.unsqueeze(1), None, [n_phr]), n_phr
    if segs.shape[0] != 1:
        return None, f"{segs.shape[0]} <SEG> tokens in the answer (need one): no masks"
    cond_in = torch.cat([conds, bg])[None]
    embed_masks = torch.ones(cond_in.shape[:2], device=model.device)
    return model.decode_masks(encoding, cond_in, segs[None], embed_masks), n_phr


def postprocess(task: Task, out, canvas: tuple, scaled, original, threshold: float, labels: list[str],
                meta: dict, canvas_masks: list, negative_points: list, image=None,
                snap_cells: float = 0.0, snaps: dict | None = None) -> tuple[TaskOutput, list]:
    """The task's post-processing; mask logits stay low-resolution on the model's device (tasks upsample
    only what they keep), and with `snap_cells` their edges snap to `image`'s within that many mask-grid
    cells (`edges.py`; `image` is the RGB PIL image; `snaps`, radius → EdgeSnap, keeps the filters for
    later requests on the same image). Also returns the visual-prompt masks at the original size."""
    prompt_masks = [to_original(m[None].float(), scaled, original, "nearest")[0].bool().cpu().numpy()
                    for m in canvas_masks]
    lowres = out.mask_logits_lowres[-1]
    snap = None
    if snap_cells:
        radius = snap_radius(snap_cells, lowres.shape[-2:], canvas_shape(canvas), scaled, original)
        snaps = {} if snaps is None else snaps
        if radius not in snaps:
            snaps[radius] = EdgeSnap(np.asarray(image), radius)
        snap = snaps[radius]
    ctx = DecodeContext(out.class_logits.float(), lowres, canvas, scaled, original,
                        threshold, labels, meta, prompt_masks, negative_points, snap)
    return task.postprocess(ctx), prompt_masks
