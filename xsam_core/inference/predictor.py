"""The Predictor, in segment-anything's `SamPredictor` shape: load once, encode an image (cached),
predict.

The expensive image side (SigLIP and SAM encodings, the pixel decoder, and the LLM's KV cache of the
shared prompt prefix: template head + image tokens) is kept per image content in a byte-bounded LRU
cache (`cache.py`), so a further request on the same image runs only the question tokens, the answer
(`generation.py`) and the mask decoder (`decoding.py`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from transformers import DynamicCache

from .. import shapes
from ..errors import CheckpointError, PromptError
from ..modeling import embedded
from ..modeling.checkpoint import load_tokenizer, load_weights, preset_for_state_dict, read_state_dict, resolve
from ..modeling.config import IMAGE_TOKEN_INDEX, SPECIAL_TOKENS, XSamConfig, preset
from ..modeling.model import XSamModel
from ..modeling.quantize import CPU_MODES, Int8Linear, check_mode, is_decoder_linear_key, quantize_llm
from ..tasks import check_request, get_task
from ..tasks.common import Choices
from ..tasks.routing import AUTO, route
from . import decoding
from .cache import ByteLRU, ImageEntry, Prefix, image_key
from .generation import StopRule, generate
from .processing import COLOUR_FITTED, load_for_model, sam_mask, sam_pixels, siglip_pixels
from .results import Prediction, StageTimings
from .templates import IMAGE_TURN, conversation, encode_prompt, parse_history
from .visual_prompts import build_regions, parse_prompts

EMBEDDED_MODEL = Path(__file__).resolve().parents[2] / "checkpoints" / "xsam-tiny-shapes"
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
SMALL_MODEL = 100_000_000  # parameters: below this bf16 saves little and costs precision


def native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX), as torch reports it."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def choose_dtype(device: str, num_parameters: int, requested: str | torch.dtype | None = None) -> torch.dtype:
    """`requested` ("auto"/None, a name from DTYPES or a torch dtype), else bf16 on CUDA and on CPUs with
    native bf16 for models of `SMALL_MODEL` parameters and more, and bf16 too where float32 weights would
    take more than half of this machine's memory (the released model: 18.5 GB); float32 otherwise."""
    if isinstance(requested, torch.dtype):
        return requested
    if requested and requested != "auto":
        try:
            return DTYPES[requested]
        except KeyError:
            raise ValueError(f"unknown dtype {requested!r}; choose auto, {', '.join(DTYPES)}") from None
    if num_parameters < SMALL_MODEL:
        return torch.float32
    if torch.device(device).type == "cuda" or native_bf16() or 4 * num_parameters > physical_memory() / 2:
        return torch.bfloat16
    return torch.float32


def quantized_rest_dtype(device: str, quantize: str, sd: dict) -> torch.dtype:
    """The dtype of what `quantize` leaves as it is (encoders, mask decoder, embeddings): bf16 beside the
    GPU modes; beside int8-cpu `choose_dtype`'s rule on those parameters, so that a CPU without native bf16,
    which emulates it, keeps them in float32 where memory allows (on a 2-core AVX2 EPYC the embedded
    model's pixel decoder takes 2.7 s in bf16 against 34 ms in float32)."""
    if quantize not in CPU_MODES:
        return torch.bfloat16
    rest = sum(v.numel() for k, v in sd.items() if not is_decoder_linear_key(k, v.shape))
    return choose_dtype(device, rest)


class Predictor:
    def __init__(self, model: XSamModel, tokenizer, name: str = "", cache_bytes: int = 2 << 30):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config: XSamConfig = model.config
        self.name = name or self.config.name
        self.special = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        rows = model.llm.get_input_embeddings().weight.shape[0]
        if max(self.special.values()) >= rows:
            raise CheckpointError(f"tokenizer ids {self.special} do not fit the {rows}-row embedding table")
        self.template = self.config.template_strings
        self.stop = StopRule(tokenizer, self.template["STOP_WORDS"])
        self.cache = ByteLRU(cache_bytes)
        self._lock = threading.RLock()  # one request at a time on the model

    # --- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, model: str | None = None, tokenizer: str | None = None, device: str | None = None,
             dtype: str | torch.dtype | None = None, attn_implementation: str = "sdpa", quantize: str | None = None,
             **kw) -> "Predictor":
        """`model`: None (the embedded model), a folder, an official weights file, or a hub id.
        `dtype`: "auto" (None), "float32", "bfloat16", "float16" or a torch dtype (see `choose_dtype`).
        `quantize`: "8bit" or "4bit" LLM weights (bitsandbytes), or "int8-cpu" (torch's int8 CPU kernels);
        the rest in `dtype`, by default bf16 for the GPU modes and `choose_dtype`'s rule for int8-cpu."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if quantize:
            check_mode(quantize, device)  # before reading gigabytes of weights
        files = resolve(str(model or EMBEDDED_MODEL), tokenizer)
        sd = read_state_dict(files["weights"])
        if quantize and dtype in (None, "auto"):
            dtype = quantized_rest_dtype(device, quantize, sd)
        dtype = choose_dtype(device, sum(v.numel() for v in sd.values()), dtype)
        cfg = files["config"] or preset(preset_for_state_dict(sd))
        xsam = build_model(cfg, dtype, attn_implementation)
        # int8-cpu quantises the decoder's weights as stored: a float32 copy of them first would double the peak
        load_weights(xsam, sd, dtype, is_decoder_linear_key if quantize in CPU_MODES else None)
        del sd
        if quantize:
            quantize_llm(xsam, quantize, dtype, device)
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
        if self.config.mask_snap:
            info["mask_snap"] = self.config.mask_snap  # mask edges snapped to the image (`tasks/edges.py`)
        if self.device.type == "cpu" and self.model.dtype == torch.bfloat16 and not native_bf16():
            info["emulated_bf16"] = True  # many times slower than float32 here (README, "On a CPU")
        return info

    @property
    def quantized(self) -> str | None:
        """"8bit" / "4bit" when the LLM's layers are bitsandbytes ones, "int8-cpu" when they are Int8Linear."""
        layers = list(self.model.llm.model.layers.modules())
        names = {type(m).__name__ for m in layers}
        if any(isinstance(m, Int8Linear) for m in layers):
            return "int8-cpu"
        return "8bit" if "Linear8bitLt" in names else "4bit" if "Linear4bit" in names else None

    # --- the image -------------------------------------------------------------------------------

    def view(self, image) -> Image.Image:
        """An image as this model sees it: `load_image`, then a subsampled JPEG's colour fitted to its
        brightness where the config asks for it (the embedded model's `chroma_fit`)."""
        return load_for_model(image, self.config.chroma_fit, self.config.sam_processor)

    def encode(self, image, timings: dict | None = None) -> tuple[ImageEntry, bool]:
        """The image's encodings, from the cache when this image was seen → (entry, cache hit)."""
        img = self.view(image)
        timings = {} if timings is None else timings
        with self._lock, torch.inference_mode():
            return self._image_entry(img, image_key(img), timings)

    def _image_entry(self, img, key: str, timings: dict) -> tuple[ImageEntry, bool]:
        entry = self.cache.get(key)
        if entry is not None:
            return entry, True
        dtype = self.model.dtype
        with self._stage(timings, "preprocess"):
            sig = siglip_pixels(img, self.config.siglip_processor).to(self.device, dtype)
            sam, scaled = sam_pixels(img, self.config.sam_processor)
            sam = sam.to(self.device, dtype)
        enc = self.model.encode_image(sig, sam, timer=lambda name: self._stage(timings, name))
        entry = ImageEntry(enc, scaled, tuple(sam.shape[-2:]))
        self.cache.put(key, entry)
        return entry, False

    def _prefix(self, entry: ImageEntry, prefix_ids: list[int], timings: dict) -> Prefix:
        """The LLM states of the template head + image tokens, computed once per image and prefix."""
        key = tuple(prefix_ids)
        if key not in entry.prefixes:
            with self._stage(timings, "prefill"):
                cache = DynamicCache()
                hidden, _ = self.model.lm_hidden(self.model.embed(prefix_ids, entry.encoding), cache)
            entry.prefixes[key] = Prefix(cache, hidden)
            self.cache.shrink()
        return entry.prefixes[key]

    def _start(self, entry: ImageEntry, ids: list[int], timings: dict) -> tuple[int, DynamicCache, list]:
        """Where the LLM starts: (ids already in the cache, the cache, their states)."""
        cut = ids.index(IMAGE_TOKEN_INDEX) + 1
        prefix = self._prefix(entry, ids[:cut], timings)
        return cut, prefix.fork(), [prefix.hidden]

    # --- the request -----------------------------------------------------------------------------

    def predict(self, image, task: str, text: str = "", prompts=None, threshold: float = 0.5,
                seed: int | None = None, max_new_tokens: int | None = None,
                force_answer: str | None = None, history: list[dict] | None = None, on_stage=None) -> Prediction:
        """Run one request. The task's rules decide what of `text` and `prompts` it reads (`check_request`);
        `force_answer` replaces greedy decoding by the given answer (teacher forcing); `history` holds the
        earlier turns of a conversation on this image (each result's `info["turn"]`), oldest first: as
        many of the latest as the context allows go into the prompt. `on_stage(name)` is called as each
        stage of `results.STAGES` that runs starts.

        `task="auto"`: the rules of `tasks/routing.py` pick the task (and the text it reads); the
        prediction is that task's, with `info["ran_as"]` = {task, title, reason, text}."""
        if task == AUTO:
            items = parse_prompts(prompts)
            chosen = route(text, items)
            pred = self.predict(image, chosen.task, chosen.text, items, threshold, seed, max_new_tokens, force_answer,
                                history, on_stage)
            pred.info["ran_as"] = chosen.info()
            return pred
        timings = StageTimings(on_stage)
        with self._stage(timings, "preprocess"):
            spec = get_task(task)
            request = check_request(spec, text, parse_prompts(prompts))
            img = self.view(image)
            regions = build_regions(request.prompts, img.height, img.width)
            spec.check_regions(len(regions.masks))
            choices = Choices(seed)
            question, meta = spec.prompt(request.text, len(regions.masks), choices)
            turns = parse_history(history)
            key = image_key(img)
        with self._lock, torch.inference_mode():
            entry, hit = self._image_entry(img, key, timings)
            n_img = entry.encoding.image_tokens.shape[1]
            prompt_text, ids, turns, dropped = self._fit(question, turns, n_img)
            length = len(ids) - 1 + n_img
            region_vectors, canvas_masks = None, []
            if regions.masks:
                with self._stage(timings, "sampler"):
                    canvas_masks = [sam_mask(m, entry.scaled, entry.canvas).to(self.device) for m in regions.masks]
                    region_vectors = self.model.region_features(entry.encoding, torch.stack(canvas_masks),
                                                                choices.generator)
            budget = min(max_new_tokens or self.config.max_new_tokens, self.config.max_length - length)
            forced = None
            if force_answer is not None:
                forced = self.tokenizer.encode(force_answer + self.template["SUFFIX"], add_special_tokens=False)
            cut, cache, states = self._start(entry, ids, timings)
            gen = generate(self.model, self.model.embed(ids[cut:], entry.encoding, region_vectors), cache, states,
                           budget, self.stop, forced, timer=lambda name: self._stage(timings, name))
            earlier = sum((t["question"] + t["answer"]).count("<p>") for t in turns)  # spans of earlier turns
            pred = self._answer(spec, meta, entry, ids, gen, regions, canvas_masks, img, threshold, timings, earlier)
        current = question.removeprefix(IMAGE_TURN).replace("<region>", "region")  # regions stay with this turn
        pred.info.update(self.describe(), image_cached=hit, seed=seed, prompt=prompt_text,
                         negative_points=regions.negative_points, turn={"question": current, "answer": pred.raw_text})
        if history:
            pred.info["history"] = {"used": len(turns), "dropped": dropped}
        if radius := img.info.get(COLOUR_FITTED):  # what the model read differs from the file's pixels
            pred.info["colour_fitted"] = f"subsampled JPEG colour fitted to its brightness ({radius} px)"
        if request.notes:
            pred.info["ignored"] = request.notes
        self._explain(pred, request.text)
        pred.timings = dict(timings)
        return pred

    def _fit(self, question: str, turns: list[dict], num_image_tokens: int):
        """The prompt with as many of the latest turns as leave room for an answer (the oldest dropped
        first) → (text, ids, turns kept, turns dropped); without room even for this turn alone, an error."""
        bos = self.tokenizer.bos_token_id if self.config.prepend_bos else None
        room = self.config.max_length - min(self.config.max_new_tokens, 128)  # keep room for the answer
        for dropped in range(len(turns) + 1):
            kept = turns[dropped:]
            text = conversation(question, kept, self.template)
            ids = encode_prompt(self.tokenizer, text, bos)
            length = len(ids) - 1 + num_image_tokens
            if length <= (room if kept else self.config.max_length):
                return text, ids, kept, dropped
        raise PromptError(f"the prompt is {length} tokens with the image; this model takes at most "
                          f"{self.config.max_length}: shorten the text or the class list")

    @contextmanager
    def _stage(self, timings: dict, name: str):
        if on_stage := getattr(timings, "on_stage", None):
            on_stage(name)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t) * 1000

    def _answer(self, spec, meta, entry, ids, gen, regions, canvas_masks, img, threshold, timings,
                earlier_phrases: int = 0) -> Prediction:
        """The generated text, its phrases and, for segmentation tasks, the masks."""
        cond = decoding.conditions(ids, entry.encoding.image_tokens.shape[1], gen.ids, self.special, earlier_phrases)
        raw = self._strip_stops(self.tokenizer.decode(gen.ids))
        pred = Prediction(task=spec.name, text=spec.clean(raw), raw_text=raw, image_size=(img.height, img.width),
                          mode=meta.get("mode"), regions=regions.masks, region_names=regions.names)
        labels = spec.labels(meta, decoding.phrases(self.tokenizer, cond, self.special), regions.names)
        pred.phrases = labels if spec.phrase_masks else []
        if spec.postprocess is None:
            return pred
        with self._stage(timings, "mask_decoder"):
            out, n_cond = decoding.decode_masks(self.model, spec, entry.encoding, gen.hidden, cond)
        if out is None:
            pred.info["note"] = n_cond
            return pred
        with self._stage(timings, "postprocess"):
            result, pred.regions = decoding.postprocess(
                spec, out, entry.canvas, entry.scaled, pred.image_size, threshold,
                labels[:n_cond], meta, canvas_masks, regions.negative_points, img,
                self.config.mask_snap, entry.snaps)
            self.cache.shrink()  # the entry may now hold a whole-image filter
        pred.segments, pred.label_map, pred.rejected = result.segments, result.label_map, result.rejected
        pred.info.update(result.extra)
        return pred

    def _explain(self, pred: Prediction, text: str) -> None:
        """Say what a result cannot show: words the tokenizer does not know (a word-level vocabulary
        maps them to <unk>, so the model never saw them), chat questions the embedded model was not
        trained on, a chat answer that came out empty, and masks that came out empty."""
        if pred.task == "chat" and self.name == embedded.NAME and not shapes.is_chat_form(text):
            pred.info["note_question"] = embedded.CHAT_QUESTIONS
        if pred.task == "chat" and not pred.text:  # the reply ended at its first token
            pred.info["empty_answer"] = "the model gave no answer to this question; ask it in other words"
        unk = self.tokenizer.unk_token_id
        words = dict.fromkeys(re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*", text.lower()))
        unknown = [w for w in words if unk is not None and unk in self.tokenizer.encode(w, add_special_tokens=False)]
        if unknown:
            pred.info["unknown_words"] = unknown
            world = f"; {embedded.WORLD}" if self.name == embedded.NAME else ""
            pred.info["note_words"] = f"this model does not know {', '.join(map(repr, unknown))}{world}"
            # labels decoded from the prompt ids read "the <unk>": show what was typed
            pred.phrases = [p.replace(self.tokenizer.unk_token, unknown[0]) for p in pred.phrases]
            for seg in pred.official_segments:
                seg.label = seg.label.replace(self.tokenizer.unk_token, unknown[0])
        # a grounded caption paints later phrases over earlier ones (the official map): say which
        hidden = pred.info.pop("hidden_under", {})
        labels = {s.category_id: s.label for s in pred.segments}
        empty = []
        for s in pred.segments:
            if s.mask.any():
                continue
            over = " and ".join(repr(labels[k]) for k in hidden.get(s.category_id, []))
            empty.append(f"the mask of {s.label!r} lies under that of the later {over}" if over
                         else f"the mask of {s.label!r} covers no pixel of the image")
        if empty:
            pred.info["empty_masks"] = "; ".join(empty)

    def _strip_stops(self, text: str) -> str:
        """The decoded answer without the template's end markers (the official clean-up knows only
        Phi-3's `<|end|>`)."""
        for word in self.template["STOP_WORDS"] + [self.tokenizer.eos_token or ""]:
            text = text.replace(word, "") if word else text
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
