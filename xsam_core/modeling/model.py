"""The X-SAM model: dual image encoders, LLM, projectors, connector, segmentor.

Attribute names equal the official checkpoint's prefixes (`llm.`, `visual_encoder.`, `segmentor.`,
`visual_projector.`, `seg_projector.`, `seg_connector.`, `llm_projector.`, `bg_embeds.`), so the
archive-layout state dict maps onto it with one rename (`visual_encoder.vision_model.` →
`visual_encoder.`, because transformers 5.x's `SiglipVisionModel` has no `vision_model` level).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    Phi3Config,
    Phi3ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from .config import IMAGE_TOKEN_INDEX, REGION_TOKEN_INDEX, XSamConfig
from .modules import ConvConnector, Projector, RegionSampler, shuffled_grid
from .segmentor import DecoderOutput, PixelFeatures, XSegmentor

LLM_CLASSES = {"phi3": (Phi3Config, Phi3ForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}


@dataclass
class ImageEncoding:
    """Everything the model computes from the image alone: reused by every request on it."""

    image_tokens: torch.Tensor  # [1, N_siglip + N_sam, H_llm]: spliced at <image>
    seg_map: torch.Tensor  # [rows, cols, H_llm]: SAM tokens as a map, the region sampler's input
    pixels: PixelFeatures  # pixel-decoder outputs

    def nbytes(self) -> int:
        tensors = [self.image_tokens, self.seg_map, self.pixels.mask_features, *self.pixels.multi_scale_features]
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class ImageBatchEncoding:
    """`encode_images` of B images at once (training's batches); `image(i)` is image i's ImageEncoding."""

    image_tokens: torch.Tensor  # [B, N_siglip + N_sam, H_llm]
    seg_tokens: torch.Tensor  # [B, rows * cols, H_llm]: the SAM part of image_tokens, row-major
    pixels: PixelFeatures | None  # pixel-decoder outputs, batch dim B (None: tokens only)
    seg_grid: tuple  # (rows, cols) of seg_tokens: SAM's patch grid, pixel-shuffled

    @property
    def visual_tokens(self) -> torch.Tensor:
        """[B, N_siglip, H_llm]: the SigLIP part of image_tokens."""
        return self.image_tokens[:, : -self.seg_tokens.shape[1]]

    def image(self, i: int) -> ImageEncoding:
        """Views into the batch: gradients flow back to it."""
        p = self.pixels
        pixels = PixelFeatures(p.mask_features[i : i + 1], [m[i : i + 1] for m in p.multi_scale_features])
        return ImageEncoding(self.image_tokens[i : i + 1], self.seg_tokens[i].view(*self.seg_grid, -1), pixels)


def layers_to_run(select: int, num_layers: int) -> int:
    """hidden_states index → how many layers produce it (index 0 is the embedding output)."""
    return select if select >= 0 else num_layers + 1 + select


class XSamModel(nn.Module):
    def __init__(self, cfg: XSamConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = cfg
        llm_config_cls, llm_cls = LLM_CLASSES[cfg.llm_type]
        llm_config = llm_config_cls(**cfg.llm)
        llm_config._attn_implementation = attn_implementation
        self.llm = llm_cls(llm_config)
        vision_config = SiglipVisionConfig(**cfg.vision)
        vision_config._attn_implementation = attn_implementation
        self.visual_encoder = SiglipVisionModel(vision_config)
        h_llm, h_sam = cfg.llm_hidden, cfg.sam["hidden_size"]
        self.visual_projector = Projector(cfg.vision["hidden_size"], h_llm)
        self.segmentor = XSegmentor(cfg, attn_implementation)
        self.seg_projector = Projector(h_sam, h_llm, downsample_ratio=cfg.seg_downsample_ratio)
        self.seg_connector = ConvConnector(h_sam, cfg.connector_hidden_dim, cfg.connector_scales)
        self.llm_projector = Projector(h_llm, cfg.mask_dim)
        self.bg_embeds = nn.Embedding(1, cfg.mask_dim)
        # A phrase's condition is the mean of its projected last-layer states. "leftmost" and "rightmost"
        # leave the LLM's first layer at cosine 0.98 and reach the condition at 0.999, and no amount of
        # reasoning training parts them, though one fixed condition per sentence picks the right thing
        # 0.81-1.00 of the time on the same queries (docs/embedded-chat-analysis.md §15). So the embedded
        # model adds a vector per word of the phrase, from a table that starts at zero. Not X-SAM's.
        self.phrase_words = nn.Embedding(cfg.llm["vocab_size"], cfg.mask_dim) if cfg.phrase_words else None
        if self.phrase_words is not None:
            nn.init.zeros_(self.phrase_words.weight)
        self.sampler = RegionSampler(cfg.sampler_points)  # no parameters
        self._init_mask2former()

    def _init_mask2former(self) -> None:
        """transformers' own inits for the standalone Mask2Former modules, which get none otherwise
        (the pixel decoder's level_embed would hold uninitialised memory, NaN included)."""
        from transformers.models.mask2former.modeling_mask2former import Mask2FormerPreTrainedModel

        m2f = Mask2FormerPreTrainedModel(self.segmentor.pixel_decoder.config)
        for module in list(self.segmentor.pixel_decoder.modules()) + list(self.segmentor.decoder.modules()):
            m2f._init_weights(module)

    @property
    def device(self) -> torch.device:
        return self.bg_embeds.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.bg_embeds.weight.dtype

    # --- image side ------------------------------------------------------------------------------

    def siglip_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """SigLIP `hidden_states[visual_select_layer]` (no post-layernorm), layers beyond it skipped."""
        enc = self.visual_encoder
        n = layers_to_run(self.config.visual_select_layer, len(enc.encoder.layers))
        h = enc.embeddings(pixel_values)
        for layer in enc.encoder.layers[:n]:
            h = layer(h, None)
        return h

    def encode_image(self, siglip_pixels: torch.Tensor, sam_pixels: torch.Tensor,
                     timer=lambda stage: nullcontext()) -> ImageEncoding:
        """Both encoders, projectors, connector and pixel decoder of one image ([1, 3, s, s] and [1, 3, H, W]);
        `timer(stage)` wraps each stage."""
        return self.encode_images(siglip_pixels, sam_pixels, timer).image(0)

    def encode_images(self, siglip_pixels: torch.Tensor, sam_pixels: torch.Tensor,
                      timer=lambda stage: nullcontext(), pixels: bool = True) -> ImageBatchEncoding:
        """`encode_image` of a batch of images ([B, 3, s, s] and [B, 3, H, W]), in one pass. With
        `pixels=False` only the image tokens (`.pixels` is None): token-only training needs no more,
        and the pixel decoder was 40 % of its forward and backward."""
        cfg = self.config
        with timer("siglip"):
            siglip = self.siglip_features(siglip_pixels)
            visual_tokens = self.visual_projector(siglip)
        with timer("sam"):
            n_sam = len(self.segmentor.encoder.layers)
            select = layers_to_run(cfg.visual_select_layer, n_sam)
            sam_states = self.segmentor.encode(sam_pixels, max(cfg.connector_layers + [n_sam]) if pixels else select)
            seg_tokens = self.seg_projector(sam_states[select])
        grid = shuffled_grid(*sam_states[select].shape[1:3], cfg.seg_downsample_ratio)
        if not pixels:
            return ImageBatchEncoding(torch.cat([visual_tokens, seg_tokens], dim=1), seg_tokens, None, grid)
        with timer("pixel_decoder"):
            maps = self.seg_connector([sam_states[i] for i in cfg.connector_layers])
            pixels = self.segmentor.pixel_features(maps, sam_pixels)
        return ImageBatchEncoding(torch.cat([visual_tokens, seg_tokens], dim=1), seg_tokens, pixels, grid)

    def region_features(self, enc: ImageEncoding, masks: torch.Tensor, generator=None) -> torch.Tensor:
        """One LLM-space vector per visual-prompt mask ([N, H, W] on the padded SAM canvas)."""
        return torch.stack([self.sampler(enc.seg_map, mask, generator)[0] for mask in masks])

    # --- language side ---------------------------------------------------------------------------

    def embed(self, ids: list[int], enc: ImageEncoding, regions: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with the image tokens spliced at <image> and one vector per <region>."""
        table = self.llm.get_input_embeddings()
        pieces, text, n_region = [], [], 0

        def flush():
            if text:
                pieces.append(table(torch.tensor(text, device=self.device)))
                text.clear()

        for i in ids:
            if i == IMAGE_TOKEN_INDEX:
                flush()
                pieces.append(enc.image_tokens[0])
            elif i == REGION_TOKEN_INDEX:
                flush()
                pieces.append(regions[n_region : n_region + 1])
                n_region += 1
            else:
                text.append(i)
        flush()
        return torch.cat(pieces)[None]

    def lm_hidden(self, inputs_embeds: torch.Tensor, cache=None):
        """Last-layer hidden states (after the final norm) and the updated KV cache."""
        out = self.llm.model(inputs_embeds=inputs_embeds, cache=cache, use_cache=cache is not None)
        return out.last_hidden_state, cache

    # --- segmentation side -----------------------------------------------------------------------

    def phrase_conditions(self, hidden: torch.Tensor, ids: list[int], phrase_ids: list[int]) -> torch.Tensor:
        """[num_phrases, D]: per phrase (`phrase_ids`, one per position of `ids`, -1 outside), the mean
        projected state of its tokens, plus with `phrase_words` the sum of their words' vectors (a sum, not
        a mean: a mean divided a word's pull by the phrase's length, and the conditions of "leftmost"
        and "rightmost" parted to 0.881 in 8 minutes where the mean left them at 0.988)."""
        n = len(phrase_ids)
        conds = pool_by_id(self.llm_projector(hidden[:n]), phrase_ids)
        if self.phrase_words is None:
            return conds
        ids_t = torch.tensor(ids[:n], device=hidden.device)
        words = self.phrase_words(ids_t.clamp_min(0)) * (ids_t >= 0)[:, None]  # image and region slots: none
        return conds + pool_by_id(words.to(hidden.dtype), phrase_ids, pool="sum")

    def decode_masks(self, enc: ImageEncoding, cond: torch.Tensor, seg: torch.Tensor,
                     embed_masks=None, cond_lens=None) -> DecoderOutput:
        return self.segmentor(enc.pixels, cond, seg, embed_masks, cond_lens)

def expand_ids(ids: list[int], num_image_tokens: int) -> list[int]:
    """The id sequence as the LLM sees it: <image> repeated once per visual token."""
    out = []
    for i in ids:
        out.extend([i] * num_image_tokens if i == IMAGE_TOKEN_INDEX else [i])
    return out


def span_ids(ids: list[int], start: int, end: int) -> list[int]:
    """Phrase index for every token from `start` to `end` inclusive (in order of appearance), else -1."""
    out, current, n = [], -1, 0
    for i in ids:
        if i == start:
            current = n
            n += 1
        out.append(current)
        if i == end:
            current = -1
    return out


def mark_ids(ids: list[int], token: int) -> list[int]:
    """Index of each occurrence of `token` (0, 1, ...) at its position, else -1."""
    out, n = [], 0
    for i in ids:
        out.append(n if i == token else -1)
        n += i == token
    return out


def pool_by_id(states: torch.Tensor, ids: list[int], pool: str = "mean") -> torch.Tensor:
    """The mean (or with `pool="sum"` the sum) of `states` rows per non-negative id, ids in ascending
    order → [num_ids, D]."""
    ids_t = torch.tensor(ids, device=states.device)
    rows = [states[ids_t == k] for k in sorted(set(ids) - {-1})]
    return torch.stack([getattr(r, pool)(0) for r in rows])
