"""The embedded model's architecture and tokenizer: the released X-SAM design, only smaller.

Same model class, loader and config format as the released model; the differences are sizes, a
Qwen3-style LLM of 4 layers, 128-px SAM input, and a connector that feeds the pixel decoder four
levels (stride 4 to 32; the released model feeds three), which gives stride-4 mask features at
this small input size.
"""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .. import shapes
from ..tasks import TASKS
from .config import (
    M2F_SWIN_L_COCO_PANOPTIC,
    SAM_PROCESSOR,
    SAM_VIT_LARGE,
    SIGLIP2_SO400M_384,
    SIGLIP_PROCESSOR,
    SPECIAL_TOKENS,
    TEMPLATES,
    XSamConfig,
)

NAME = "xsam-tiny-shapes"
LOAD_RELEASED = "load the released model: python app.py --model hao9610/X-SAM"
# What the embedded model can be asked about: said when a request uses words outside its vocabulary.
WORLD = (f"it knows the shapes world: {', '.join(shapes.SHAPES)}; colours {', '.join(shapes.COLOURS)}; "
         f"small and large; the {' and the '.join(shapes.STUFF)}. For real photos {LOAD_RELEASED}")
# What the embedded model can be asked in chat: said when a chat question has another form.
CHAT_QUESTIONS = (f"the embedded model learnt to answer three questions only: {'; '.join(shapes.CHAT_FORMS)} "
                  f"(any other gets a guess). For other questions {LOAD_RELEASED}")
CHAT_MARKERS = ["<|user|>", "<|end|>", "<|assistant|>"]
PAD, UNK = "<pad>", "<unk>"


def embedded_config(vocab_size: int, special_token_ids: dict) -> XSamConfig:
    return XSamConfig(
        llm_type="qwen3",
        llm=dict(
            vocab_size=vocab_size, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=64, hidden_act="silu",
            max_position_embeddings=512, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
            attention_bias=False, use_sliding_window=False,
        ),
        vision=dict(SIGLIP2_SO400M_384, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                    num_attention_heads=4, image_size=64, patch_size=16),
        sam=dict(SAM_VIT_LARGE, hidden_size=128, num_hidden_layers=6, num_attention_heads=4, mlp_dim=512,
                 image_size=128, patch_size=8, window_size=8, global_attn_indexes=[2, 5],
                 output_channels=64, num_pos_feats=32, initializer_range=0.02),
        mask2former=dict(M2F_SWIN_L_COCO_PANOPTIC, num_queries=20, hidden_dim=128, feature_size=128,
                         mask_feature_size=128, encoder_layers=2, decoder_layers=7, num_attention_heads=4,
                         dim_feedforward=512, encoder_feedforward_dim=256),
        template="phi3_chat",
        special_token_ids=special_token_ids,
        seg_select_layers=[3, 4, 5, 6], connector_hidden_dim=64, connector_scale_factor=[2, 1, 0.5, 0.25],
        connector_levels=4, mask_refiner=32, mask_snap=3.0, chroma_fit=3,
        siglip_processor=dict(SIGLIP_PROCESSOR, size=64),
        sam_processor=dict(SAM_PROCESSOR, longest_edge=128),
        max_length=512, max_new_tokens=64, name=NAME,
    )


def corpus(n_scenes: int = 3000, seed: int = 12345) -> list[str]:
    """Every string the embedded model reads or writes: templates, answers and shapes-world requests."""
    texts = [t for task in TASKS.values() for t in task.templates]
    texts += [a for task in TASKS.values() for a in task.answers]
    texts += [TEMPLATES["phi3_chat"]["INSTRUCTION"], "; ".join(shapes.SHAPES + shapes.STUFF)]
    texts += list(shapes.NUMBER_WORDS) + list(shapes.COLOURS) + ["yes", "no", "ins:", "sem:"]
    rng = np.random.default_rng(seed)
    for _ in range(n_scenes):
        for request in shapes.make_tasks(shapes.generate_scene(rng), rng):
            texts += [request["text"], request.get("answer", ""), request.get("caption_grounded", "")]
    return texts


def build_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer (`tokenizers`), chat markers and X-SAM tokens special."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    specials = [PAD, UNK] + CHAT_MARKERS + list(SPECIAL_TOKENS)
    vocab = {t: i for i, t in enumerate(specials)}
    words = set()
    for text in texts:
        for s in specials:
            text = text.replace(s, " ")
        words.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text.lower().replace("{", " ").replace("}", " ")))
    for w in sorted(words):
        vocab.setdefault(w, len(vocab))
    tok.model = models.WordLevel(vocab=vocab, unk_token=UNK)
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, eos_token="<|end|>",
                                   additional_special_tokens=CHAT_MARKERS + list(SPECIAL_TOKENS))
