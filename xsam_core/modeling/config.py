"""X-SAM configuration: one JSON-serialisable object for every part of the model.

The sub-configs of the released inits (Phi-3-mini-4k-instruct, Qwen3, siglip2-so400m-patch14-384,
sam-vit-large, mask2former-swin-large-coco-panoptic) are published facts, shipped here as presets
so that only the tokenizer and the X-SAM weights have to come from the hub.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = "xsam-core/1"
FIXTURE_FORMAT = "xsam-ref-fixture/1"

IMAGE_TOKEN_INDEX = -200
REGION_TOKEN_INDEX = -300
SPECIAL_TOKENS = ("<SEG>", "<p>", "</p>")

# Chat templates (xtuner / X-SAM `utils/template.py`); SYSTEM is unused by every X-SAM config, and every
# one separates the turns of a conversation with SEP = "\n" after the answer's SUFFIX (spec §3.2).
TURN_SEP = "\n"
TEMPLATES = {
    "phi3_chat": {
        "INSTRUCTION": "<|user|>\n{input}<|end|>\n<|assistant|>\n",
        "SUFFIX": "<|end|>",
        "STOP_WORDS": ["<|end|>"],
    },
    "qwen3_instruct": {
        "INSTRUCTION": "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
        "SUFFIX": "<|im_end|>",
        "STOP_WORDS": ["<|im_end|>", "<|endoftext|>"],
    },
    "qwen3_wothinking": {
        "INSTRUCTION": "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        "SUFFIX": "<|im_end|>",
        "STOP_WORDS": ["<|im_end|>", "<|endoftext|>"],
    },
}

# --- published configs of the released inits --------------------------------------------------

PHI3_MINI_4K = dict(
    vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=32, hidden_act="silu", max_position_embeddings=4096,
    original_max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=2047,
    bos_token_id=1, eos_token_id=32000, pad_token_id=32000, tie_word_embeddings=False,
    attention_bias=False, rope_scaling=None,
)
QWEN3_1_7B = dict(
    vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
    num_attention_heads=16, num_key_value_heads=8, head_dim=128, hidden_act="silu",
    max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
    bos_token_id=151643, eos_token_id=151645, attention_bias=False, use_sliding_window=False,
)
QWEN3_4B_INSTRUCT_2507 = dict(
    QWEN3_1_7B, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
    max_position_embeddings=262144, rope_theta=5000000.0,
)
SIGLIP2_SO400M_384 = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
    image_size=384, patch_size=14, num_channels=3, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
    vision_use_head=True,
)
SAM_VIT_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_dim=4096, image_size=1024,
    patch_size=16, window_size=14, global_attn_indexes=[5, 11, 17, 23], output_channels=256,
    num_pos_feats=128, layer_norm_eps=1e-6, qkv_bias=True, use_abs_pos=True, use_rel_pos=True,
    hidden_act="gelu",
)
M2F_SWIN_L_COCO_PANOPTIC = dict(
    num_queries=200, hidden_dim=256, feature_size=256, mask_feature_size=256, encoder_layers=6,
    decoder_layers=10, num_attention_heads=8, dim_feedforward=2048, encoder_feedforward_dim=1024,
    common_stride=4, feature_strides=[4, 8, 16, 32], pre_norm=False, dropout=0.0,
    enforce_input_projection=False,
)
SIGLIP_PROCESSOR = dict(size=384, resample=3, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], expand_to_square=True)
SAM_PROCESSOR = dict(
    longest_edge=1024, resample=2, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]
)


@dataclass
class XSamConfig:
    """Everything needed to build an X-SAM model and run it (weights and tokenizer aside)."""

    llm_type: str  # "phi3" or "qwen3"
    llm: dict  # kwargs of transformers' Phi3Config / Qwen3Config
    vision: dict  # SiglipVisionConfig kwargs
    sam: dict  # SamVisionConfig kwargs
    mask2former: dict  # Mask2FormerConfig kwargs (decoder side only)
    template: str = "phi3_chat"
    special_token_ids: dict = field(default_factory=dict)  # {"<SEG>": id, "<p>": id, "</p>": id}
    # X-SAM's own parts
    visual_select_layer: int = -2
    seg_select_layers: list = field(default_factory=lambda: [6, 12, 18, 24])
    connector_hidden_dim: int = 512
    connector_scale_factor: list = field(default_factory=lambda: [4, 2, 1, 0.5])
    connector_levels: int = 3  # how many of the (layer, scale) pairs feed the pixel decoder: the last ones
    seg_downsample_ratio: float = 0.5
    sampler_points: int = 256
    class_logit_clamp: float = 500.0
    class_logit_masked_fill: float = -1e9
    mask_refiner: int = 0  # the embedded model's own finer masks (`segmentor.MaskRefiner`'s width; 0 = X-SAM's)
    value_positions: bool = False  # the embedded model's own: positions in what the decoder's queries gather
    phrase_words: bool = False  # the embedded model's own: a learnt vector per word, summed into its phrase's condition
    mask_snap: float = 0.0  # the embedded model's own: mask edges snapped to the image within this many
    # mask-grid cells (`tasks/edges.py`; 0 = X-SAM's bilinear upsample)
    chroma_fit: int = 0  # the embedded model's own: a subsampled JPEG's colour fitted to its brightness
    # within this many pixels before anything else sees it (`processing.fit_chroma`; 0 = as decoded)
    # processing and generation
    siglip_processor: dict = field(default_factory=lambda: dict(SIGLIP_PROCESSOR))
    sam_processor: dict = field(default_factory=lambda: dict(SAM_PROCESSOR))
    max_length: int = 4096
    max_new_tokens: int = 512
    prepend_bos: bool = False  # the official demo prepends none
    name: str = "xsam"

    # -- derived values --
    @property
    def llm_hidden(self) -> int:
        return self.llm["hidden_size"]

    @property
    def mask_dim(self) -> int:
        return self.mask2former["hidden_dim"]

    @property
    def connector_layers(self) -> list:
        return list(self.seg_select_layers[-self.connector_levels:])

    @property
    def connector_scales(self) -> list:
        return list(self.connector_scale_factor[-self.connector_levels:])

    @property
    def feature_channels(self) -> list:
        """Channels of the connector maps: conv to C·s, then pixel-shuffle(s) → C/s."""
        return [int(self.sam["hidden_size"] / s) for s in self.connector_scales]

    @property
    def template_strings(self) -> dict:
        return TEMPLATES[self.template]

    def to_dict(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, d: dict) -> "XSamConfig":
        if d.get("format") == FIXTURE_FORMAT:
            return _from_fixture_dict(d)
        if d.get("format") != FORMAT:
            raise ValueError(f"unknown X-SAM config format {d.get('format')!r} (expected {FORMAT!r})")
        d = {k: v for k, v in d.items() if k != "format"}
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "XSamConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _pick(d: dict, keys) -> dict:
    return {k: d[k] for k in keys if k in d}


_LLM_KEYS = sorted(set(PHI3_MINI_4K) | set(QWEN3_1_7B) | {"partial_rotary_factor", "attention_dropout"})


def _from_fixture_dict(d: dict) -> XSamConfig:
    """Read the reference-fixture format (every official sub-config dumped as plain JSON)."""
    x = d["xsam"]
    m2f = _pick(d["mask2former_config"], list(M2F_SWIN_L_COCO_PANOPTIC))
    sam = _pick(d["sam_vision_config"], list(SAM_VIT_LARGE) + ["initializer_range"])
    conn = d["seg_connector"]
    sig = d["siglip_image_processor"]
    samp = d["sam_image_processor"]
    llm_type = d["llm_type"]
    template = d["template"]["name"]
    return XSamConfig(
        llm_type=llm_type,
        llm=_pick(d["llm_config"], _LLM_KEYS),
        vision=_pick(d["siglip_vision_config"], list(SIGLIP2_SO400M_384)),
        sam=sam,
        mask2former=m2f,
        template=template,
        special_token_ids=dict(d["special_tokens"]),
        visual_select_layer=x["visual_select_layer"],
        seg_select_layers=list(x["seg_select_layers"]),
        connector_hidden_dim=conn["hidden_channels"],
        connector_scale_factor=list(conn["scale_factor"]),
        connector_levels=len(conn["scale_factor"]),
        seg_downsample_ratio=x["downsample_ratio"],
        sampler_points=d["vision_sampler"]["num_sample_point"],
        class_logit_clamp=x["class_logit_clamp"],
        class_logit_masked_fill=x["class_logit_masked_fill"],
        siglip_processor=dict(
            size=sig["size"]["height"], resample=sig["resample"], mean=sig["image_mean"],
            std=sig["image_std"], expand_to_square=sig["expand_to_square"],
        ),
        sam_processor=dict(
            longest_edge=samp["size"]["longest_edge"], resample=samp["resample"],
            mean=samp["image_mean"], std=samp["image_std"],
        ),
        max_length=4096,
        max_new_tokens=d["generation_config"]["max_new_tokens"],
        prepend_bos=d["template"].get("bos_prepended", False),
        name="xsam-ref-fixture",
    )


# --- presets ------------------------------------------------------------------------------------

def _released(llm_type: str, llm: dict, template: str, vocab_rows: int, seg_ids: int, name: str) -> XSamConfig:
    llm = dict(llm, vocab_size=vocab_rows)  # resize_token_embeddings(len(tokenizer)) after adding 3 tokens
    return XSamConfig(
        llm_type=llm_type, llm=llm, vision=dict(SIGLIP2_SO400M_384), sam=dict(SAM_VIT_LARGE),
        mask2former=dict(M2F_SWIN_L_COCO_PANOPTIC), template=template,
        special_token_ids={t: seg_ids + i for i, t in enumerate(SPECIAL_TOKENS)},
        max_length=4096 if llm_type == "phi3" else 40960 - 752 - 1024, name=name,
    )


def preset(name: str) -> XSamConfig:
    """Configs of the released X-SAM models and a tiny one for tests."""
    if name == "xsam-phi3":
        return _released("phi3", PHI3_MINI_4K, "phi3_chat", 32014, 32011, name)
    if name == "xsam-qwen3-1.7b":
        return _released("qwen3", QWEN3_1_7B, "qwen3_wothinking", 151672, 151669, name)
    if name == "xsam-qwen3-4b":
        return _released("qwen3", QWEN3_4B_INSTRUCT_2507, "qwen3_instruct", 151672, 151669, name)
    if name == "tiny":
        return tiny_config()
    raise KeyError(f"unknown preset {name!r}; choose from {PRESETS}")


PRESETS = ("xsam-phi3", "xsam-qwen3-1.7b", "xsam-qwen3-4b", "tiny")


def tiny_config(vocab_size: int = 64, llm_type: str = "qwen3", **overrides) -> XSamConfig:
    """A few-hundred-kB model with the released architecture, for tests and smoke runs."""
    llm = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=1024,
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=llm_type == "qwen3",
        attention_bias=False,
    )
    if llm_type == "qwen3":
        llm.update(head_dim=16, use_sliding_window=False)
    else:
        # Phi3Config's default eos/pad id (32000) lies outside a tiny vocabulary
        llm.update(num_key_value_heads=4, sliding_window=None, original_max_position_embeddings=1024,
                   bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg = XSamConfig(
        llm_type=llm_type, llm=llm,
        vision=dict(SIGLIP2_SO400M_384, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                    num_attention_heads=4, image_size=32, patch_size=16),
        sam=dict(SAM_VIT_LARGE, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, mlp_dim=64,
                 image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1, 3],
                 output_channels=16, num_pos_feats=16, initializer_range=0.02),
        mask2former=dict(M2F_SWIN_L_COCO_PANOPTIC, num_queries=8, hidden_dim=32, feature_size=32,
                         mask_feature_size=32, encoder_layers=1, decoder_layers=4, num_attention_heads=4,
                         dim_feedforward=64, encoder_feedforward_dim=64),
        template="phi3_chat",
        seg_select_layers=[1, 2, 3, 4], connector_hidden_dim=16, connector_scale_factor=[4, 2, 1, 0.5],
        connector_levels=3,
        siglip_processor=dict(SIGLIP_PROCESSOR, size=32),
        sam_processor=dict(SAM_PROCESSOR, longest_edge=64),
        max_length=1024, max_new_tokens=32, name="tiny",
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg

