"""Training losses: X-SAM's, and two training-only terms.

X-SAM's losses: next-token cross-entropy on the answer, Mask2Former's Hungarian-matched class
cross-entropy (no-object weight 0.1) + point-sampled mask BCE + dice on every decoder layer. Besides,
the chat answers get a cross-entropy term of their own (`chat`): in the token mean of all answers they
are a few percent of the loss, drowned by the long captions (docs/embedded-chat-analysis.md). So do the
words right after each caption phrase (`after`: "," or "and" while things remain, then "in"), where a
greedy caption decides to go on or end: one token in seven of a caption, and a near tie where a
caption left a thing out (analysis §27; 0 by default, the runs before 40 trained without it). And a
hinge on every answer token's lead over its runner-up (`margin`, under `MARGIN_LOGITS`; 0 by default):
the shipped caption of the gallery led its wrong word by 0.2-0.6 logits, where cross-entropy's pull
is as weak as on a word already won by 5, so any small change to the weights flipped it (§39). And a
dense mask term in and behind holes (`hole`; 0 by default): on the cells a target encloses without
covering (a ring's hole, or where a thing on top cuts into the one behind) its query's mask must be
off, and the query of whatever shows there must be on. The point-sampled mask loss samples mostly
where a mask is unsure; a ring's mask that fills its hole is sure there, and a star seen through the
hole is an island its own mask is sure it lacks, so the two errors were rarely sampled (analysis §42). The
training-only terms, which the inference model never sees (see embedded-training.md for why a
from-scratch LLM needs them):
* selection: for a condition with one target (a referring phrase, a visual prompt, a caption
  phrase), cross-entropy over the queries of that condition's log-probability, any query whose mask
  covers the target being right: this trains exactly the argmax over queries that inference takes;
* attributes: each condition embedding is classified (cosine classifier with an additive margin)
  into the category and colour of what it refers to, so that names and phrases cannot collapse
  onto one embedding;
* place: from the last-layer state of each query matched to a target, a linear head reads the
  target's centroid (x, y), so that "the leftmost shape" can be one direction of the condition space
  (a probe of run 13 read a matched query's area at R² 0.94 but its x below zero and y at 0.1:
  `scripts/analysis/query_position.py`);
* ground: one LLM head, where a caption names a thing's words, looks at that thing's SAM tokens
  (`grounding`);
* token labels: from each image token the LLM reads (SAM's, `tokens`, and SigLIP's, `vtokens`), a
  linear head tells which shape, and which colour, covers most of its cell, so those tokens carry
  what a shape is, not only its colour (the measured gap behind "Is there a star?").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

from .. import shapes
from ..modeling.model import ImageBatchEncoding, XSamModel, expand_ids, mark_ids, span_ids
from ..modeling.segmentor import PixelFeatures
from .grounding import GROUND_LAYER, AttentionInputs, ground_loss
from .samples import CATEGORIES, COLOURS, TOKEN_COVER, TOKEN_LABELS, Batch

LOSS_WEIGHTS = {"lm": 2.0, "chat": 2.0, "class": 2.0, "mask": 5.0, "dice": 5.0, "select": 2.0, "attr": 1.0,
                "place": 2.0, "tokens": 1.0, "vtokens": 1.0, "ground": 1.0, "after": 0.0, "margin": 0.0,
                "hole": 0.0}
COVER_IOU = 0.5  # selection: a query whose mask overlaps the target this much proposes it
# A cell with no shape weighs this much against one with a shape in the shape term: 84 % of cells hold
# none, and with equal weights the head settled on the commonest round shapes (SigLIP's tokens named
# every square, triangle, star and cross wrong at step 3,627; scripts/analysis/token_shapes.py).
TOKEN_NONE_WEIGHT = 0.2
MARGIN_LOGITS = 3.0  # `margin`: the lead over the runner-up an answer token is pushed to (analysis §40)


class AttributeHead(nn.Module):
    """Training-only cosine classifiers with an additive margin (CosFace) on condition embeddings."""

    def __init__(self, dim: int, scale: float = 16.0, margin: float = 0.2):
        super().__init__()
        self.category = nn.Parameter(torch.randn(len(CATEGORIES), dim) * 0.02)
        self.colour = nn.Parameter(torch.randn(len(COLOURS), dim) * 0.02)
        self.scale, self.margin = scale, margin

    def loss(self, conds: torch.Tensor, category: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        total = conds.new_zeros(())
        for table, target in ((self.category, category), (self.colour, colour)):
            keep = target >= 0
            if keep.any():
                cos = F.normalize(conds[keep], dim=-1) @ F.normalize(table, dim=-1).T
                cos = cos - self.margin * F.one_hot(target[keep], len(table))
                total = total + F.cross_entropy(self.scale * cos, target[keep])
        return total


class TokenHead(nn.Module):
    """Training-only classifier of image tokens: the shape that covers most of the token's cell, and
    its colour, or "none" where nothing covers `TOKEN_COVER` of it. One linear read-out shared by SAM's
    and SigLIP's tokens: both sit in the LLM's input space, and one direction per shape in both is what
    an answer has to look up. A softmax over the shapes, not a sigmoid per label: with a sigmoid the
    rare shape labels drowned in the negatives, and after 4,000 steps a linear probe still read a
    token's shape at chance from SigLIP and at 0.30 from SAM (docs/embedded-chat-analysis.md)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, TOKEN_LABELS + 2)  # shapes + none, colours + none

    def logits(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N, shapes + 1] and [B, N, colours + 1]: the last class of each is "none"."""
        shape, colour = self.linear(tokens).split([len(shapes.SHAPES) + 1, len(COLOURS) + 1], dim=-1)
        return shape, colour

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor, grid: tuple) -> torch.Tensor:
        """`tokens` [B, rows * cols, D], row-major over a (rows, cols) grid on the labels' frame."""
        (shape, colour), (shape_target, colour_target) = self.logits(tokens), token_targets(labels, grid)
        weight = torch.ones(shape.shape[-1], device=shape.device)
        weight[-1] = TOKEN_NONE_WEIGHT
        return (F.cross_entropy(shape.flatten(0, 1), shape_target.flatten(), weight=weight)
                + F.cross_entropy(colour.flatten(0, 1), colour_target.flatten()))


class TrainingHeads(nn.Module):
    """The training-only heads, saved with a run's state and never exported: conditions' attributes,
    image tokens' labels, and the matched queries' place (an L1 read-out of the centroid)."""

    def __init__(self, cfg):
        super().__init__()
        self.attr = AttributeHead(cfg.mask_dim)
        self.tokens = TokenHead(cfg.llm_hidden)
        self.place = nn.Linear(cfg.mask_dim, 2)


def cell_cover(labels: torch.Tensor, grid: int | tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The share of each cell of a grid (rows, cols; a side for a square) over `canvas_labels`
    [B, TOKEN_LABELS, H, W] that each shape, and each colour, covers: [B, cells, shapes] and [B, cells, colours]."""
    cover = F.adaptive_avg_pool2d(labels, grid).flatten(2).transpose(1, 2)  # [B, cells, labels]
    shape, colour = cover.split([len(shapes.SHAPES), len(COLOURS)], dim=-1)
    return shape, colour


def token_targets(labels: torch.Tensor, grid: int | tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Per cell (`cell_cover`): the index of the shape, and of the colour, that covers most of it, or
    the count of them ("none") where none covers `TOKEN_COVER` of it; two [B, cells] tensors."""
    out = []
    for share in cell_cover(labels, grid):
        most, best = share.max(-1)
        out.append(torch.where(most >= TOKEN_COVER, best, share.shape[-1]))
    return out[0], out[1]


def mask_centroids(masks: torch.Tensor) -> torch.Tensor:
    """[N, 2]: the (x, y) centroid of each [N, H, W] canvas mask, as a share of the canvas' width and height."""
    h, w = masks.shape[-2:]
    xs = (torch.arange(w, device=masks.device, dtype=masks.dtype) + 0.5) / w
    ys = (torch.arange(h, device=masks.device, dtype=masks.dtype) + 0.5) / h
    weight = masks.sum((-2, -1)).clamp_min(1e-6)
    return torch.stack([(masks.sum(-2) * xs).sum(-1) / weight, (masks.sum(-1) * ys).sum(-1) / weight], -1)


def mask2former_loss(num_points: int) -> Mask2FormerLoss:
    """HF's matcher and point-sampled mask losses (its class loss assumes a fixed label count)."""
    cfg = Mask2FormerConfig(num_labels=1, train_num_points=num_points, oversample_ratio=3.0,
                            importance_sample_ratio=0.75, class_weight=LOSS_WEIGHTS["class"],
                            mask_weight=LOSS_WEIGHTS["mask"], dice_weight=LOSS_WEIGHTS["dice"])
    return Mask2FormerLoss(cfg, weight_dict={})


def grid_cells(masks: torch.Tensor, grid: tuple) -> torch.Tensor:
    """[N, h, w]: the cells of a mask grid that [N, H, W] masks (any resolution) cover at least half of."""
    return F.interpolate(masks[None].float(), size=grid, mode="area")[0] >= 0.5


def hole_cells(masks: torch.Tensor, grid: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The targets ([N, H, W] canvas masks) on the mask grid (`grid_cells`), and the cells
    the `hole` term charges for each: those it encloses without covering (SciPy's hole filling: a
    ring's hole, or what a thing drawn on top takes out of the middle of the one behind) and its own
    cells inside any target's enclosure (a thing seen through a ring's hole)."""
    cells = grid_cells(masks, grid)
    filled = np.array([ndimage.binary_fill_holes(c) for c in cells.cpu().numpy()], dtype=bool).reshape(cells.shape)
    enclosed = torch.from_numpy(filled).to(cells.device) & ~cells
    return cells, enclosed | (cells & enclosed.any(0))


def _hole_loss(mask_logits: torch.Tensor, holes: list, indices) -> torch.Tensor:
    """Binary cross-entropy of each matched query's mask against its target on the target's charged
    cells (`hole_cells`), the mean over all of them (0 where no target encloses a cell)."""
    logits, targets = [], []
    for i, (src, tgt) in enumerate(indices):
        cells, charged = holes[i][0][tgt], holes[i][1][tgt]
        logits.append(mask_logits[i, src][charged])
        targets.append(cells[charged])
    logits, targets = torch.cat(logits), torch.cat(targets)
    if not logits.numel():
        return mask_logits.new_zeros(())
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def _class_loss(logits: torch.Tensor, classes: list, indices, no_object_weight: float = 0.1):
    b, q, k = logits.shape
    target = torch.full((b, q), k - 1, dtype=torch.long, device=logits.device)  # the background column is last
    for i, (src, tgt) in enumerate(indices):
        target[i, src] = classes[i][tgt]
    weight = torch.ones(k, device=logits.device)
    weight[-1] = no_object_weight
    return F.cross_entropy(logits.transpose(1, 2), target, weight=weight)


def covering_queries(mask_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[Q, N]: which queries' masks (logits [Q, h, w]) cover which targets (masks [N, H, W], any
    resolution: `grid_cells` on the logits' grid), IoU >= COVER_IOU."""
    proposals = mask_logits > 0
    targets = grid_cells(targets, proposals.shape[-2:])
    inter = (proposals[:, None] & targets[None]).flatten(2).sum(-1)
    union = (proposals[:, None] | targets[None]).flatten(2).sum(-1)
    return inter >= COVER_IOU * union.clamp_min(1)


def _selection_loss(logits: torch.Tensor, mask_logits: torch.Tensor, mask_labels: list, classes: list, indices,
                    selectable: list) -> torch.Tensor:
    """For conditions with a single target: a query on the target must win the argmax over queries.
    Every query whose mask covers the target (IoU >= COVER_IOU) counts besides the matched one: the
    decoder proposes a thing with two to four queries, and treating those as rivals pushed a condition
    away from its target about as hard as towards it (analysis §15)."""
    terms = []
    logp = logits.log_softmax(-1)  # [B, Q, K]
    for i, (src, tgt) in enumerate(indices):
        if not selectable[i]:
            continue
        covers = covering_queries(mask_logits[i].detach(), mask_labels[i])
        for query, t in zip(src.tolist(), tgt.tolist()):
            scores = logp[i, :, classes[i][t]]
            on = covers[:, t].clone()
            on[query] = True
            terms.append(torch.logsumexp(scores, 0) - torch.logsumexp(scores[on], 0))
    return torch.stack(terms).mean() if terms else logits.new_zeros(())


def compute_losses(model: XSamModel, batch: Batch, criterion: Mask2FormerLoss, heads: TrainingHeads,
                   special: dict) -> dict[str, torch.Tensor]:
    images = model.encode_images(batch.siglip, batch.sam)  # the inference model's own encoding, batched

    # language side: one right-padded batch (causal attention never sees the padding)
    embeds, expanded = [], []
    for s in batch.samples:
        enc = images.image(s.image)
        regions = model.region_features(enc, torch.stack(s.regions)) if s.regions else None
        embeds.append(model.embed(s.ids, enc, regions)[0])
        expanded.append(expand_ids(s.ids, enc.image_tokens.shape[1]))
    length = max(e.shape[0] for e in embeds)
    x = torch.stack([F.pad(e, (0, 0, 0, length - e.shape[0])) for e in embeds])
    with AttentionInputs(model.llm.model, [GROUND_LAYER]) as tap:
        hidden = model.llm.model(inputs_embeds=x).last_hidden_state
    losses = {**_lm_losses(model, hidden, batch.samples, expanded), **token_losses(images, batch, heads.tokens)}
    ground = ground_loss(tap, batch.samples, expanded, special["<p>"], images.seg_grid,
                         lambda s, n: s.cond_category[n] < len(shapes.SHAPES) and not (s.slip and s.slip[0] == n))
    if ground is not None:
        losses["ground"] = ground

    seg_batch, conds_all, cats, cols = [], [], [], []
    for b, (s, ids) in enumerate(zip(batch.samples, expanded)):
        if not s.cond_category:  # a text answer (chat) has no condition to segment
            continue
        seg_pos = [i for i, m in enumerate(mark_ids(ids, special["<SEG>"])) if m >= 0]
        conds = model.phrase_conditions(hidden[b], ids, span_ids(ids, special["<p>"], special["</p>"]))
        seg_batch.append((s, conds, model.llm_projector(hidden[b, seg_pos[0]])))
        conds_all.append(conds)
        cats += s.cond_category
        cols += s.cond_colour
    if seg_batch:
        losses.update(_segmentation_losses(model, images.pixels, seg_batch, criterion, heads.place,
                                           batch.labels.shape[-2:]))
        device = hidden.device
        losses["attr"] = heads.attr.loss(torch.cat(conds_all), torch.tensor(cats, device=device),
                                   torch.tensor(cols, device=device))
    return losses


def token_losses(images: ImageBatchEncoding, batch: Batch, token_head: TokenHead) -> dict[str, torch.Tensor]:
    """The token-label terms on SAM's (`tokens`) and SigLIP's (`vtokens`) image tokens: all that
    `train --tokens-only` trains, and part of every joint step."""
    side = int(round(images.visual_tokens.shape[1] ** 0.5))  # SigLIP's square grid
    return {"tokens": token_head.loss(images.seg_tokens, batch.labels, images.seg_grid),
            "vtokens": token_head.loss(images.visual_tokens, batch.siglip_labels, (side, side))}


def _lm_losses(model, hidden, samples, expanded) -> dict[str, torch.Tensor]:
    """`lm`: the token mean over every answer; `chat`: the token mean over chat answers; `after`: the
    token mean over the words right after a phrase's "</p>" (0 without); `margin`: the token mean of
    how far each answer token's logit falls short of leading the runner-up by `MARGIN_LOGITS`. A
    slipped caption's wrong words are read, not learnt."""
    close = model.config.special_token_ids["</p>"]
    rows, targets, chat, after = [], [], [], []
    for b, (s, ids) in enumerate(zip(samples, expanded)):
        start = len(ids) - (len(s.ids) - s.n_prompt)  # first answer position in the expanded sequence
        learnt = [j for j in range(len(ids) - start) if not (s.slip and j in s.slip[1])]
        rows.append(hidden[b, [start - 1 + j for j in learnt]])
        targets.append(torch.tensor([ids[start + j] for j in learnt], device=hidden.device))
        chat += [s.task == "chat"] * len(learnt)
        after += [ids[start + j - 1] == close for j in learnt]
    logits, target = model.llm.lm_head(torch.cat(rows)), torch.cat(targets)
    per_token = F.cross_entropy(logits, target, reduction="none")
    right = logits.gather(1, target[:, None])[:, 0]
    runner_up = logits.scatter(1, target[:, None], float("-inf")).amax(1)
    short = F.relu(MARGIN_LOGITS - (right - runner_up))

    def mean_where(flags: list[bool]) -> torch.Tensor:
        where = torch.tensor(flags, device=hidden.device)
        return per_token[where].mean() if where.any() else per_token.new_zeros(())

    return {"lm": per_token.mean(), "chat": mean_where(chat), "after": mean_where(after), "margin": short.mean()}


def _segmentation_losses(model, pixels: PixelFeatures, seg_batch, criterion, place: nn.Linear,
                         canvas: tuple) -> dict[str, torch.Tensor]:
    samples = [s for s, _, _ in seg_batch]
    k_max = max(c.shape[0] for _, c, _ in seg_batch) + 1
    d = model.config.mask_dim
    bg = model.bg_embeds.weight[0]
    device = bg.device
    masks_in = torch.zeros(len(seg_batch), k_max, device=device)
    rows = []
    for i, (_, conds, _) in enumerate(seg_batch):
        rows.append(torch.cat([conds, torch.zeros(k_max - 1 - conds.shape[0], d, device=device), bg[None]]))
        masks_in[i, : conds.shape[0]] = 1
        masks_in[i, -1] = 1
    cond_in = torch.stack(rows)
    seg_in = torch.stack([seg for _, _, seg in seg_batch])[:, None]
    idx = torch.tensor([s.image for s in samples], device=device)
    feats = PixelFeatures(pixels.mask_features[idx], [m[idx] for m in pixels.multi_scale_features])
    out = model.segmentor(feats, cond_in, seg_in, masks_in)
    classes = [torch.tensor(s.classes, dtype=torch.long, device=device) for s in samples]
    mask_labels = [torch.stack(s.masks) if s.masks else torch.zeros(0, *canvas, device=device) for s in samples]
    num_masks = float(max(sum(len(c) for c in classes), 1))  # a batch of absent objects only has none
    totals = {"class": 0.0, "mask": 0.0, "dice": 0.0, "hole": 0.0}
    holes = [hole_cells(m, out.mask_logits_lowres[0].shape[-2:]) for m in mask_labels]
    for layer, (hidden, mask_logits) in enumerate(zip(out.hidden, out.mask_logits_lowres)):
        logits = model.segmentor.class_logits(hidden.transpose(0, 1), cond_in, masks_in)
        with torch.no_grad():
            indices = criterion.matcher(mask_logits, logits, mask_labels, classes)
        totals["class"] = totals["class"] + _class_loss(logits, classes, indices)
        m = criterion.loss_masks(mask_logits, mask_labels, indices, num_masks)
        totals["mask"] = totals["mask"] + m["loss_mask"]
        totals["dice"] = totals["dice"] + m["loss_dice"]
        totals["hole"] = totals["hole"] + _hole_loss(mask_logits, holes, indices)
        if layer == len(out.hidden) - 1:
            totals["select"] = _selection_loss(logits, mask_logits, mask_labels, classes, indices,
                                               [s.selectable for s in samples])
            totals["place"] = _place_loss(hidden.transpose(0, 1), mask_labels, indices, place)
    return totals


def _place_loss(queries: torch.Tensor, mask_labels: list, indices, place: nn.Linear) -> torch.Tensor:
    """L1 between the centroid `place` reads from each matched query [B, Q, D] and its target's."""
    states = torch.cat([queries[i, src] for i, (src, _) in enumerate(indices)])
    masks = torch.cat([m[tgt] for m, (_, tgt) in zip(mask_labels, indices)])
    keep = masks.flatten(1).any(1)  # an empty mask has no centroid
    if not keep.any():
        return states.new_zeros(())
    return F.l1_loss(place(states[keep]).float(), mask_centroids(masks[keep]).float())
