"""X-SAM's segmentor: SAM ViT encoder, Mask2Former pixel decoder and masked-attention decoder,
with X-SAM's two changes to the decoder (the <SEG> embedding added to every query, per-phrase
repetition of the image features) and the cosine class head.

All heavy parts are the transformers 5.x classes; only the thin forward of the transformer
module is written here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Mask2FormerConfig, SamVisionConfig
from transformers.models.mask2former import modeling_mask2former
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoder,
    Mask2FormerTransformerModule,
)
from transformers.models.sam.modeling_sam import SamVisionEncoder

from .config import XSamConfig

_deformable_attention = modeling_mask2former.multi_scale_deformable_attention


def _deformable_attention_fp32(value, spatial_shapes, sampling_locations, attention_weights):
    """The pixel decoder's deformable sampling in float32, as X-SAM's own copy of it does: bf16
    `grid_sample` on a CPU is about 7x slower (7.65 s against 1.02 s at full size) and returned NaN
    on a bf16 full-size decoder here. A no-op for float32 models (the conformance path)."""
    out = _deformable_attention(value.float(), spatial_shapes, sampling_locations.float(), attention_weights.float())
    return out.to(value.dtype)


# transformers' attention module calls this module-level function; there is no option for it.
modeling_mask2former.multi_scale_deformable_attention = _deformable_attention_fp32


class SharedImageEmbedding(nn.Module):
    """SAM's prompt positional-embedding buffer: unused by X-SAM but part of its checkpoint."""

    def __init__(self, num_pos_feats: int):
        super().__init__()
        self.register_buffer("positional_embedding", torch.zeros(2, num_pos_feats))


@dataclass
class PixelFeatures:
    """Pixel-decoder outputs: what the mask decoder attends to (B = 1 at inference, one row per image or
    per decoder request in training)."""

    mask_features: torch.Tensor  # [B, D, h, w]
    multi_scale_features: list  # 3 × [B, D, h_i, w_i], low resolution first


@dataclass
class DecoderOutput:
    class_logits: torch.Tensor  # [B', Q, K] last layer
    mask_logits_lowres: list  # every prediction's [B', Q, h, w] (initial + each layer)
    hidden: list  # every prediction's query states [Q, B', D] after the decoder layernorm

    @property
    def last_hidden(self) -> torch.Tensor:
        return self.hidden[-1]


def mask2former_config(cfg: XSamConfig) -> Mask2FormerConfig:
    return Mask2FormerConfig(use_pretrained_backbone=False, **cfg.mask2former)


def sam_vision_config(cfg: XSamConfig, attn_implementation: str) -> SamVisionConfig:
    sam = SamVisionConfig(**cfg.sam)
    sam._attn_implementation = attn_implementation
    return sam


class MaskRefiner(nn.Module):
    """Twice the mask features' resolution, the detail taken from the SAM input pixels: not X-SAM's
    (its mask features sit at a quarter of a 1024-px input); the embedded model's own, because at a
    128-px input a quarter is a 32x32 grid on which even the best-fitting logits reach IoU 0.82 on a
    2-3.5:1 image (64x64: 0.93; `scripts/analysis/mask_ceiling.py`). Output = bilinear 2x upsample + a
    correction whose last conv starts at zero, so a model it is added to answers as before until trained."""

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.GELU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.GELU())
        self.fuse = nn.Sequential(nn.Conv2d(dim + channels, channels, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(channels, dim, 1))
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, mask_features: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        detail = self.stem(pixels.to(mask_features.dtype))
        up = F.interpolate(mask_features, size=detail.shape[-2:], mode="bilinear", align_corners=False)
        return up + self.fuse(torch.cat([up, detail], dim=1))


def _zero_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class XSegmentor(nn.Module):
    def __init__(self, cfg: XSamConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        m2f = mask2former_config(cfg)
        self.shared_image_embedding = SharedImageEmbedding(cfg.sam["num_pos_feats"])
        self.encoder = SamVisionEncoder(sam_vision_config(cfg, attn_implementation))
        self.pixel_decoder = Mask2FormerPixelDecoder(m2f, feature_channels=cfg.feature_channels)
        self.decoder = Mask2FormerTransformerModule(in_features=m2f.hidden_dim, config=m2f)
        self.logit_scale = nn.Parameter(torch.tensor([math.log(1 / 0.07)]))
        self.clamp = cfg.class_logit_clamp
        self.masked_fill = cfg.class_logit_masked_fill
        self.refiner = MaskRefiner(m2f.mask_feature_size, cfg.mask_refiner) if cfg.mask_refiner else None
        # Mask2Former adds the sine positions to the keys of its cross-attention only, so what a query
        # gathers (the values) says nothing of where: a query cannot tell "leftmost" from "rightmost".
        # The embedded model adds them to the image features too, through maps that start at zero (a
        # warm start answers as before until trained). Not X-SAM's: off for the released model.
        self.value_positions = nn.ModuleList(
            _zero_linear(m2f.hidden_dim) for _ in range(self.decoder.num_feature_levels)
        ) if cfg.value_positions else None

    def encode(self, pixel_values: torch.Tensor, num_layers: int) -> list[torch.Tensor]:
        """SAM ViT hidden states 0..num_layers (0 = patch + position embedding), channels-last."""
        enc = self.encoder
        # the patch embedding's own forward refuses any input but the configured square: the embedded
        # model's canvases that keep an image's aspect (`processing.sam_view`) are not square
        h = enc.patch_embed.projection(pixel_values).permute(0, 2, 3, 1)
        if enc.pos_embed is not None:
            h = h + self._positions(h.shape[1:3])
        states = [h]
        for layer in enc.layers[:num_layers]:
            h = layer(h)
            states.append(h)
        return states

    def _positions(self, grid) -> torch.Tensor:
        """SAM's absolute positions [1, g, g, C] for a patch grid (rows, cols): as trained on the
        square, else resized bicubically (as ViTs interpolate them for other input sizes)."""
        pos = self.encoder.pos_embed
        if tuple(pos.shape[1:3]) == tuple(grid):
            return pos
        resized = F.interpolate(pos.permute(0, 3, 1, 2).float(), size=tuple(grid), mode="bicubic", align_corners=False)
        return resized.permute(0, 2, 3, 1).to(pos.dtype)

    def pixel_features(self, connector_maps: list[torch.Tensor], sam_pixels: torch.Tensor) -> PixelFeatures:
        out = self.pixel_decoder(connector_maps, return_dict=True)
        mask_features = out.mask_features if self.refiner is None else self.refiner(out.mask_features, sam_pixels)
        return PixelFeatures(mask_features, list(out.multi_scale_features))

    def forward(
        self,
        pixels: PixelFeatures,
        cond_embeds: torch.Tensor,
        seg_embeds: torch.Tensor,
        embed_masks: torch.Tensor | None = None,
        cond_lens: list[int] | None = None,
    ) -> DecoderOutput:
        """Masked-attention decoder conditioned on <SEG> (added to every query) + cosine class head."""
        dec = self.decoder
        mask_features, levels = pixels.mask_features, pixels.multi_scale_features
        if cond_lens is not None:  # one decoder pass per referring phrase
            reps = torch.tensor(cond_lens, device=mask_features.device)
            mask_features = mask_features.repeat_interleave(reps, dim=0)
            levels = [x.repeat_interleave(reps, dim=0) for x in levels]
        batch = mask_features.shape[0]
        features, positions, sizes = [], [], []
        for i in range(dec.num_feature_levels):
            x = levels[i]
            sizes.append(x.shape[-2:])
            position = dec.position_embedder(x.shape, x.device, x.dtype, None).flatten(2).permute(2, 0, 1)
            feature = dec.input_projections[i](x).flatten(2) + dec.level_embed.weight[i][None, :, None]
            feature = feature.permute(2, 0, 1)
            if self.value_positions is not None:
                feature = feature + self.value_positions[i](position)
            positions.append(position)
            features.append(feature)
        query_pos = dec.queries_embedder.weight.unsqueeze(1).repeat(1, batch, 1)
        queries = dec.queries_features.weight.unsqueeze(1).repeat(1, batch, 1)
        queries = queries + seg_embeds.transpose(0, 1)  # [B',1,D] → [1,B',D]: the same shift for every query
        out = dec.decoder(
            inputs_embeds=queries,
            multi_stage_positional_embeddings=positions,
            pixel_embeddings=mask_features,
            encoder_hidden_states=features,
            query_position_embeddings=query_pos,
            feature_size_list=sizes,
            return_dict=True,
        )
        hidden = list(out.intermediate_hidden_states)
        logits = self.class_logits(hidden[-1].transpose(0, 1), cond_embeds, embed_masks)
        return DecoderOutput(logits, list(out.masks_queries_logits), hidden)

    def class_logits(self, queries: torch.Tensor, conds: torch.Tensor, embed_masks: torch.Tensor | None):
        logits = self.logit_scale.exp() * (F.normalize(queries, dim=-1) @ F.normalize(conds, dim=-1).transpose(1, 2))
        logits = logits.clamp(-self.clamp, self.clamp)
        if embed_masks is not None:
            logits = logits.masked_fill(embed_masks[:, None, :] == 0, self.masked_fill)
        return logits
