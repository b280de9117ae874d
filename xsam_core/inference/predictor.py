"""The Predictor: load once, then `predict(image, task, text, prompts, threshold)`.

Like segment-anything's `SamPredictor`, the expensive image side is computed once per image: the
SigLIP and SAM encodings, the pixel decoder, and the LLM's KV cache of the shared prompt prefix
(template head + image tokens) are kept per image content in a byte-bounded LRU cache. A further
request on the same image runs only the question tokens, the answer and the mask decoder.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import DynamicCache

from ..modeling.checkpoint import (
    CheckpointError,
    load_tokenizer,
    load_weights,
    preset_for_state_dict,
    read_state_dict,
    resolve,
)
from ..modeling.config import IMAGE_TOKEN_INDEX, SPECIAL_TOKENS, XSamConfig, preset
from ..modeling.model import ImageEncoding, XSamModel, expand_ids, mark_ids, mean_by_id, span_ids
from ..modeling.quantize import quantize_llm
from ..tasks import PromptError, get_task
from ..tasks.common import Choices, DecodeContext, to_canvas, to_original
from .processing import load_image, sam_mask, sam_pixels, siglip_pixels
from .results import Prediction
from .templates import apply_template, encode_prompt
from .visual_prompts import build_regions

EMBEDDED_MODEL = Path(__file__).resolve().parents[2] / "checkpoints" / "xsam-tiny-shapes"


@dataclass
class _Prefix:
    cache: DynamicCache  # KV of the prefix; never mutated (requests extend copies of its layers)
    hidden: torch.Tensor  # [1, Lp, H] last-layer states of the prefix


@dataclass
class _ImageEntry:
    encoding: ImageEncoding
    scaled: tuple
    prefixes: dict = field(default_factory=dict)  # prefix ids → _Prefix

    def nbytes(self) -> int:
        n = self.encoding.nbytes()
        for p in self.prefixes.values():
            n += p.hidden.numel() * p.hidden.element_size()
            n += sum(t.numel() * t.element_size() for layer in p.cache.layers for t in (layer.keys, layer.values)
                     if t is not None)
        return n


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
    return hashlib.blake2b(img.tobytes() + repr(img.size).encode(), digest_size=16).hexdigest()


def _fork(cache: DynamicCache) -> DynamicCache:
    """A cache that starts from `cache`'s contents; appending to it leaves `cache` untouched
    (layers grow by concatenation into new tensors)."""
    fork = copy.copy(cache)
    fork.layers = [copy.copy(layer) for layer in cache.layers]
    return fork


class Predictor:
    def __init__(self, model: XSamModel, tokenizer, name: str = "", cache_bytes: int = 2 << 30,
                 naive: bool = False):
        """`naive=True` reproduces the official pipeline's costs, for benchmarks: no image or prefix
        cache (the whole prompt is prefilled every time), every decoder prediction upsampled to the
        SAM canvas and every query's mask resized to the original image."""
        self.model = model.eval()
        self.naive = naive
        self.tokenizer = tokenizer
        self.config: XSamConfig = model.config
        self.name = name or self.config.name
        self.special = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        rows = model.llm.get_input_embeddings().weight.shape[0]
        if max(self.special.values()) >= rows:
            raise CheckpointError(f"tokenizer ids {self.special} do not fit the {rows}-row embedding table")
        self.template = self.config.template_strings
        self.eos_id = tokenizer.eos_token_id
        self.cache = ByteLRU(cache_bytes)
        self._lock = threading.RLock()  # one request at a time on the model

    # --- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, model: str | None = None, tokenizer: str | None = None, device: str | None = None,
             dtype: torch.dtype | None = None, attn_implementation: str = "sdpa", quantize: str | None = None,
             **kw) -> "Predictor":
        """`model`: None (the embedded model), a folder, an official weights file, or a hub id.
        `quantize`: "8bit" or "4bit" LLM weights (bitsandbytes); the rest stays bf16."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = torch.bfloat16 if torch.device(device).type == "cuda" or quantize else torch.float32
        files = resolve(str(model or EMBEDDED_MODEL), tokenizer)
        sd = read_state_dict(files["weights"])
        cfg = files["config"] or preset(preset_for_state_dict(sd))
        xsam = build_model(cfg, dtype, attn_implementation)
        load_weights(xsam, sd, dtype)
        del sd
        if quantize:
            quantize_llm(xsam, quantize, dtype)
        xsam.to(device)
        tok = load_tokenizer(files["tokenizer"])
        return cls(xsam, tok, name=cfg.name, **kw)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def describe(self) -> dict:
        info = {"model": self.name, "device": str(self.device), "dtype": str(self.model.dtype).replace("torch.", "")}
        if self.quantized:
            info["llm_weights"] = self.quantized
        return info

    @property
    def quantized(self) -> str | None:
        """"8bit" / "4bit" when the LLM's layers are bitsandbytes ones."""
        names = {type(m).__name__ for m in self.model.llm.model.layers.modules()}
        return "8bit" if "Linear8bitLt" in names else "4bit" if "Linear4bit" in names else None

    # --- the request -----------------------------------------------------------------------------

    def predict(self, image, task: str, text: str = "", prompts=None, threshold: float = 0.5,
                seed: int | None = None, max_new_tokens: int | None = None, force_answer: str | None = None,
                trace: dict | None = None) -> Prediction:
        """Run one request. `force_answer` replaces greedy decoding by the given answer (teacher forcing,
        as the official evaluation runs); `trace` collects every intermediate tensor (conformance)."""
        timings: dict[str, float] = {}
        with self._stage(timings, "preprocess"):
            img = load_image(image)
            spec = get_task(task)
            regions = build_regions(prompts, img.height, img.width)
            choices = Choices(seed)
            question, meta = spec.prompt(text or "", len(regions.masks), choices)
            ids = encode_prompt(self.tokenizer, apply_template(question, self.template),
                                self.tokenizer.bos_token_id if self.config.prepend_bos else None)
            key = image_key(img)
        with self._lock, torch.inference_mode():
            entry, hit = self._image_entry(img, key, timings, trace)
            n_img = entry.encoding.image_tokens.shape[1]
            length = len(ids) - 1 + n_img
            if length > self.config.max_length:
                raise PromptError(f"the prompt is {length} tokens with the image; this model takes at most "
                                  f"{self.config.max_length}: shorten the text or the class list")
            region_vectors, canvas_masks = None, []
            if regions.masks:
                with self._stage(timings, "sampler"):
                    longest = self.config.sam_processor["longest_edge"]
                    canvas_masks = [sam_mask(m, entry.scaled, longest).to(self.device) for m in regions.masks]
                    region_vectors = self.model.region_features(entry.encoding, torch.stack(canvas_masks),
                                                                choices.generator, trace)
                if trace is not None:
                    trace["input.vprompt_masks"] = torch.stack(canvas_masks)
            budget = min(max_new_tokens or self.config.max_new_tokens, self.config.max_length - length)
            forced = None
            if force_answer is not None:
                forced = self.tokenizer.encode(force_answer + self.template["SUFFIX"], add_special_tokens=False)
            gen = self._generate(entry, ids, region_vectors, budget, timings, forced, trace)
            pred = self._segment(spec, meta, entry, ids, gen, regions, canvas_masks, img, threshold, timings, trace)
        pred.info.update(self.describe(), image_cached=hit, seed=seed, prompt=apply_template(question, self.template),
                         negative_points=regions.negative_points)
        pred.timings = timings
        return pred

    @contextmanager
    def _stage(self, timings: dict, name: str):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t) * 1000

    def _image_entry(self, img, key: str, timings: dict, trace: dict | None = None) -> tuple[_ImageEntry, bool]:
        entry = self.cache.get(key) if trace is None and not self.naive else None
        if entry is not None:
            return entry, True
        dtype = self.model.dtype
        with self._stage(timings, "preprocess"):
            sig = siglip_pixels(img, self.config.siglip_processor).to(self.device, dtype)
            sam, scaled = sam_pixels(img, self.config.sam_processor)
            sam = sam.to(self.device, dtype)
        enc = self.model.encode_image(sig, sam, trace, timer=lambda name: self._stage(timings, name))
        if trace is not None:
            trace["input.siglip_pixel_values"], trace["input.sam_pixel_values"] = sig, sam
        entry = _ImageEntry(enc, scaled)
        self.cache.put(key, entry)
        return entry, False

    def _prefix(self, entry: _ImageEntry, prefix_ids: list[int], timings: dict) -> _Prefix:
        key = tuple(prefix_ids)
        if key not in entry.prefixes:
            with self._stage(timings, "prefill"):
                cache = DynamicCache()
                hidden, _ = self.model.lm_hidden(self.model.embed(prefix_ids, entry.encoding), cache)
            entry.prefixes[key] = _Prefix(cache, hidden)
            self.cache.shrink()
        return entry.prefixes[key]

    def _generate(self, entry: _ImageEntry, ids: list[int], regions, budget: int, timings: dict,
                  forced: list[int] | None = None, trace: dict | None = None) -> dict:
        """Greedy decoding with hidden states (official generation settings, spec §4.0).

        Returns the generated ids and the last-layer states of every token fed to the LLM (the prompt,
        then each generated token but the last: generation stops before feeding it back)."""
        model, table = self.model, self.model.llm.get_input_embeddings()
        if self.naive:  # the official way: the whole prompt prefilled, nothing kept
            cut, cache, states = 0, DynamicCache(), []
        else:  # the template head + image tokens come from the per-image prefix cache
            cut = ids.index(IMAGE_TOKEN_INDEX) + 1
            prefix = self._prefix(entry, ids[:cut], timings)
            cache, states = _fork(prefix.cache), [prefix.hidden]
        embeds = [model.embed(ids[cut:], entry.encoding, regions)]
        with self._stage(timings, "prefill"):
            rest, _ = model.lm_hidden(embeds[0], cache)
        states.append(rest)
        generated: list[int] = []
        with self._stage(timings, "decode"):
            last = rest[:, -1]
            for step in range(len(forced) if forced is not None else max(budget, 0)):
                token = forced[step] if forced is not None else int(model.llm.lm_head(last).argmax(-1))
                generated.append(token)
                if self._stopped(generated) and not (forced is not None and trace is not None):
                    break  # (a traced forced run also feeds the last token: the reference tensors cover it)
                embeds.append(table(torch.tensor([[token]], device=self.device)))
                h, _ = model.lm_hidden(embeds[-1], cache)
                states.append(h)
                last = h[:, -1]
        hidden = torch.cat(states, dim=1)[0]
        if trace is not None:
            head = [model.embed(ids[:cut], entry.encoding)] if cut else []
            trace["llm.inputs_embeds"] = torch.cat(head + embeds, dim=1)
            trace["llm.last_hidden_state"] = hidden[None]
            trace["llm.logits"] = model.llm.lm_head(hidden)[None]
            trace["input.input_ids"] = torch.tensor([ids + generated])
        return {"generated": generated, "hidden": hidden}

    def _stopped(self, generated: list[int]) -> bool:
        if generated[-1] == self.eos_id:
            return True
        text = self.tokenizer.decode(generated).replace("\r", "").replace("\n", "")
        return any(text.endswith(w) for w in self.template["STOP_WORDS"])

    # --- from hidden states to masks ---------------------------------------------------------------

    def _segment(self, spec, meta, entry, ids, gen, regions, canvas_masks, img, threshold, timings,
                 trace=None) -> Prediction:
        generated, hidden = gen["generated"], gen["hidden"]
        p, q, seg = self.special["<p>"], self.special["</p>"], self.special["<SEG>"]
        canvas_size = self.config.sam["image_size"]
        prompt_ids = expand_ids(ids, entry.encoding.image_tokens.shape[1])
        n = len(prompt_ids)
        fed = generated[:-1]  # tokens that were fed back: their states exist
        from_output = p in fed
        if from_output:
            cond_ids = [-1] * n + span_ids(fed, p, q)
        else:
            cond_ids = span_ids(prompt_ids, p, q) + [-1] * len(fed)
        seg_ids = [-1] * n + mark_ids(fed, seg)
        if trace is not None:
            trace["input.cond_ids"] = torch.tensor([span_ids(ids + generated, p, q)])
            trace["input.seg_ids"] = torch.tensor([mark_ids(ids + generated, seg)])
            trace["llm.input_ids_expanded"] = torch.tensor([prompt_ids + generated])
            trace["llm.cond_ids_expanded"] = torch.tensor([span_ids(prompt_ids + generated, p, q)])
            trace["llm.seg_ids_expanded"] = torch.tensor([mark_ids(prompt_ids + generated, seg)])
        phrases = self._phrases(fed if from_output else ids, p, q)
        raw = self.tokenizer.decode(generated)
        pred = Prediction(task=spec.name, text=self._clean(raw, spec.name), raw_text=self._strip_stops(raw),
                          image_size=(img.height, img.width), mode=meta.get("mode"),
                          regions=regions.masks, region_names=regions.names)
        labels = self._labels(spec.name, meta, phrases, regions)
        pred.phrases = labels if spec.name in ("gcgseg", "refseg", "reaseg") else []
        if trace is not None:
            trace["llm_projector.out"] = self.model.llm_projector(hidden)[None]
        if spec.postprocess is None:
            return pred
        if max(seg_ids) < 0 or max(cond_ids) < 0:
            pred.info["note"] = "the answer holds no <SEG> token or no phrase: no masks"
            return pred
        with self._stage(timings, "mask_decoder"):
            proj = self.model.llm_projector(hidden)
            conds = mean_by_id(proj[: len(cond_ids)], cond_ids)
            segs = mean_by_id(proj[: len(seg_ids)], seg_ids)
            bg = self.model.bg_embeds.weight
            if spec.refer:
                n_phr = conds.shape[0]
                if segs.shape[0] not in (1, n_phr):
                    pred.info["note"] = f"{segs.shape[0]} <SEG> tokens for {n_phr} phrases: no masks"
                    return pred
                cond_in = torch.cat([conds, bg]).unsqueeze(0).repeat(n_phr, 1, 1)
                out = self.model.decode_masks(entry.encoding, cond_in, segs.unsqueeze(1), None, [n_phr])
            else:
                if segs.shape[0] != 1:
                    pred.info["note"] = f"{segs.shape[0]} <SEG> tokens in the answer (need one): no masks"
                    return pred
                cond_in = torch.cat([conds, bg])[None]
                embed_masks = torch.ones(cond_in.shape[:2], device=self.device)
                out = self.model.decode_masks(entry.encoding, cond_in, segs[None], embed_masks)
            if self.naive:  # the official code upsamples every prediction and resizes every query's mask
                upsampled = [to_canvas(m, canvas_size) for m in out.mask_logits_lowres]
                _ = to_original(upsampled[-1][0], entry.scaled, pred.image_size)
        if trace is not None:
            trace.update({
                "cond_embeds.raw": conds, "seg_embeds.raw": segs,
                "cond_embeds": cond_in, "seg_embeds": segs.unsqueeze(1) if spec.refer else segs[None],
                "class_queries_logits": out.class_logits, "decoder.intermediate_hidden_states.last": out.last_hidden,
                "decoder.masks_queries_logits_all_layers_lowres": torch.stack(out.mask_logits_lowres),
                "masks_queries_logits.lowres": out.mask_logits_lowres[-1],
                "masks_queries_logits": to_canvas(out.mask_logits_lowres[-1], canvas_size),
            })
            if not spec.refer:
                trace["embed_masks"] = embed_masks
        with self._stage(timings, "postprocess"):
            prompt_masks = [to_original(m[None].float(), entry.scaled, pred.image_size, "nearest")[0]
                            .bool().cpu().numpy() for m in canvas_masks]
            # mask logits stay low-resolution on the model's device: tasks upsample only what they keep
            ctx = DecodeContext(out.class_logits.float(), out.mask_logits_lowres[-1],
                                canvas_size, entry.scaled, pred.image_size,
                                threshold, labels[: conds.shape[0]], meta, prompt_masks, regions.negative_points)
            result = spec.postprocess(ctx)
        pred.segments, pred.label_map, pred.regions = result.segments, result.label_map, prompt_masks
        pred.info.update(result.extra)
        return pred

    def _phrases(self, ids: list[int], p: int, q: int) -> list[str]:
        """Decoded text strictly inside each <p> … </p>."""
        out, start = [], None
        for i, t in enumerate(ids):
            if t == p:
                start = i + 1
            elif t == q and start is not None:
                span = [x for x in ids[start:i] if x >= 0]
                out.append(self.tokenizer.decode(span).strip())
                start = None
        return out

    def _labels(self, task: str, meta: dict, phrases: list[str], regions) -> list[str]:
        if task in ("genseg", "ovseg"):
            return list(meta["classes"])
        if task in ("intseg", "vgdseg"):
            return [f"prompt {name}" for name in regions.names]
        return phrases

    def _strip_stops(self, text: str) -> str:
        for word in self.template["STOP_WORDS"] + [self.tokenizer.eos_token or ""]:
            text = text.replace(word, "") if word else text
        return text.strip()

    def _clean(self, raw: str, task: str) -> str:
        """The official demo's clean-up, with every template stop word removed (the official code
        removes only Phi-3's `<|end|>`)."""
        text = self._strip_stops(raw)
        text = text.replace("<p> ", "<p>").replace("</p> ", "</p>")
        if task != "gcgseg":
            text = text.replace("<p>", "").replace("</p>", "")
        return text.strip()


def build_model(cfg: XSamConfig, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa") -> XSamModel:
    """An X-SAM with uninitialised weights in `dtype`, ready for `load_weights` (no random init cost)."""
    from transformers.initialization import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with no_init_weights():
            model = XSamModel(cfg, attn_implementation)
    finally:
        torch.set_default_dtype(previous)
    model.llm.tie_weights()  # no_init_weights also skips tying lm_head to embed_tokens (tied configs)
    return model

