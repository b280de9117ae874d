"""Checkpoints: the official `pytorch_model.bin` (archive or main-branch key layout), safetensors,
and the project's self-contained folders (config + weights + tokenizer).

Loading is strict: a missing, unexpected or mis-shaped key raises `CheckpointError` listing them
(the official main branch silently drops such weights; we never do).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from .config import SPECIAL_TOKENS, XSamConfig, preset

# hao9610/X-SAM: where the released stage-3 weights live, and where their tokenizers come from.
RELEASED = {
    "xsam-phi3": dict(
        file="s3_mixed_finetune/xsam_phi3_mini_4k_instruct_siglip2_so400m_p14_384_sam_large_m2f_gpu16_mixed_finetune/pytorch_model.bin",
        tokenizer="microsoft/Phi-3-mini-4k-instruct",
    ),
    "xsam-qwen3-4b": dict(
        file="s3_mixed_finetune/xsam_qwen3_4b_instruct_siglip2_so400m_p14_384_sam_large_m2f_gpu16_mixed_finetune/pytorch_model.bin",
        tokenizer="Qwen/Qwen3-4B-Instruct-2507",
    ),
    "xsam-qwen3-1.7b": dict(
        file="s3_mixed_finetune/xsam_qwen3_1x7b_siglip2_so400m_p14_384_sam_large_m2f_gpu16_mixed_finetune/pytorch_model.bin",
        tokenizer="Qwen/Qwen3-1.7B",
    ),
}
HUB_REPO = "hao9610/X-SAM"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "added_tokens.json", "vocab.json", "merges.txt"]
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# --- reading and key layouts ----------------------------------------------------------------------

def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(path)
    sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


def detect_layout(keys) -> str:
    """'main' for the main-branch layout (after convert_xsam_s3_checkpoint.py), else 'archive'."""
    keys = set(keys)
    if any(k.startswith("vision_encoder.") for k in keys) or "segmentor.class_predictor.logit_scale" in keys:
        return "main"
    return "archive"


def _rename(sd: dict, pairs) -> dict:
    out = {}
    for k, v in sd.items():
        for old, new in pairs:
            if k == old or (old.endswith(".") and k.startswith(old)):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


_MAIN_TO_ARCHIVE = [("vision_encoder.", "visual_encoder."),
                    ("segmentor.class_predictor.logit_scale", "segmentor.logit_scale")]
_ARCHIVE_TO_MODULE = [("visual_encoder.vision_model.", "visual_encoder.")]
_MODULE_TO_ARCHIVE = [("visual_encoder.", "visual_encoder.vision_model.")]


def to_module_keys(sd: dict) -> dict:
    """Any official layout → this package's module names."""
    if detect_layout(sd) == "main":
        sd = _rename(sd, _MAIN_TO_ARCHIVE)
    return _rename(sd, _ARCHIVE_TO_MODULE)


def to_archive_keys(sd: dict) -> dict:
    return _rename(sd, _MODULE_TO_ARCHIVE)


def preset_for_state_dict(sd: dict) -> str:
    """Which released architecture a full-size official state dict is."""
    if "llm.model.layers.0.self_attn.qkv_proj.weight" in sd:
        return "xsam-phi3"
    width = sd["llm.model.embed_tokens.weight"].shape[1]
    return {2048: "xsam-qwen3-1.7b", 2560: "xsam-qwen3-4b"}.get(width) or _fail(
        f"unrecognised LLM width {width}: pass a config")


def _fail(msg):
    raise CheckpointError(msg)


# --- loading into a model -----------------------------------------------------------------------

def _tied_keys(model: torch.nn.Module) -> dict[str, str]:
    """key → the first key sharing its storage (tied embeddings)."""
    seen, tied = {}, {}
    for k, v in model.state_dict(keep_vars=True).items():
        ptr = v.data_ptr() if v.device.type != "meta" else id(v)
        if ptr in seen:
            tied[k] = seen[ptr]
        else:
            seen[ptr] = k
    return tied


def check_keys(model: torch.nn.Module, sd: dict) -> list[str]:
    """Problems between a module-key state dict and the model: missing, unexpected, mis-shaped.
    Keys are named as in the official (archive-layout) file, which is what a user can look up."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied = _tied_keys(model)
    problems = []
    for k, shape in expected.items():
        if k not in sd:
            if not (k in tied and tied[k] in sd):
                problems.append(f"missing: {_archive_name(k)} {list(shape)}")
        elif tuple(sd[k].shape) != shape:
            problems.append(f"shape: {_archive_name(k)} checkpoint {list(sd[k].shape)} vs model {list(shape)}")
    problems += [f"unexpected: {_archive_name(k)} {list(sd[k].shape)}" for k in sd if k not in expected]
    return problems


def _archive_name(key: str) -> str:
    return next(iter(to_archive_keys({key: None})))


def load_weights(model: torch.nn.Module, sd: dict, dtype: torch.dtype | None = None, as_stored=None) -> None:
    """Strictly load an official-layout (or module-layout) state dict, casting floats to `dtype`, except
    the tensors for which `as_stored(key, shape)` holds (kept as the file has them: what is quantised next
    need not be copied to a wider dtype first)."""
    sd = to_module_keys(sd)
    problems = check_keys(model, sd)
    if problems:
        head = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise CheckpointError(f"checkpoint does not match the model ({len(problems)} problems):\n  {head}{more}")
    tied = _tied_keys(model)
    cast = dtype is not None
    sd = {k: (v.to(dtype) if cast and v.is_floating_point() and not (as_stored and as_stored(k, v.shape)) else v)
          for k, v in sd.items() if k not in tied}
    model.load_state_dict(sd, strict=False, assign=True)
    if hasattr(model, "llm") and model.llm.config.tie_word_embeddings:
        model.llm.tie_weights()


# --- tokenizers ---------------------------------------------------------------------------------

def add_xsam_tokens(tokenizer):
    """X-SAM's `_add_special_tokens`: <SEG>, <p>, </p> appended as special tokens (idempotent)."""
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    return tokenizer


def load_tokenizer(path: str | Path):
    """The tokenizer of a folder, with X-SAM's tokens. A tokenizer.json is used exactly as written, as
    transformers 4 (the official code's) did: transformers 5 rebuilds a `LlamaTokenizer` (Phi-3's class
    name) with its own pre-tokenizer, which changes the ids of every chunk after a special token."""
    from transformers import AutoTokenizer, TokenizersBackend

    loader = TokenizersBackend if (Path(path) / "tokenizer.json").exists() else AutoTokenizer
    return add_xsam_tokens(loader.from_pretrained(str(path)))


# --- folders and hub ids --------------------------------------------------------------------------

def _tokenizer_dir(folder: Path) -> Path:
    for cand in (folder, folder / "tokenizer"):
        if (cand / "tokenizer.json").exists() or (cand / "tokenizer.model").exists():
            return cand
    raise CheckpointError(f"no tokenizer in {folder} (looked for tokenizer.json in it and in tokenizer/)")


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).exists():
            return folder / name
    raise CheckpointError(f"no weights in {folder} (looked for {', '.join(WEIGHT_FILES)})")


def resolve(model: str, tokenizer: str | None = None, cache_dir: str | Path | None = None) -> dict:
    """Turn a model argument into local files: {config, weights, tokenizer}.

    `model` is a self-contained folder (config.json + weights + tokenizer), an official weights
    file (then `tokenizer` names a tokenizer folder or hub id), or a hub id: `hao9610/X-SAM`
    (optionally `hao9610/X-SAM:xsam-qwen3-4b`) for the released weights, any other id for a
    self-contained folder on the hub. Hub files go through huggingface_hub's cache (`cache_dir`,
    default HF_HUB_CACHE), so a cached model works offline (HF_HUB_OFFLINE=1).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        cfg = XSamConfig.load(path / "config.json") if (path / "config.json").exists() else None
        tok = _fetch_tokenizer(tokenizer, cache_dir) if tokenizer else _tokenizer_dir(path)
        return dict(config=cfg, weights=_weights_file(path), tokenizer=tok)
    if path.is_file():
        if tokenizer is None:
            raise CheckpointError(f"{path} is a bare weights file: also pass --tokenizer (a folder or hub id)")
        return dict(config=None, weights=path, tokenizer=_fetch_tokenizer(tokenizer, cache_dir))
    if path.suffix in (".bin", ".safetensors", ".pt", ".pth") or model.startswith((".", "/", "~")):
        raise CheckpointError(f"no such file or folder: {path}")  # a path, not a hub id: don't ask the hub
    if model.count("/") != 1 and not model.startswith(HUB_REPO):
        raise CheckpointError(f"{model!r} is neither a local path nor a hub id (owner/name)")
    return _resolve_hub(model, tokenizer, cache_dir)


def _resolve_hub(model: str, tokenizer: str | None, cache_dir) -> dict:
    from huggingface_hub import hf_hub_download, snapshot_download

    repo, _, variant = model.partition(":")
    if repo == HUB_REPO:
        variant = variant or "xsam-phi3"
        if variant not in RELEASED:
            raise CheckpointError(f"unknown released variant {variant!r}; choose from {sorted(RELEASED)}")
        weights = hf_hub_download(HUB_REPO, RELEASED[variant]["file"], cache_dir=cache_dir)
        tok = _fetch_tokenizer(tokenizer or RELEASED[variant]["tokenizer"], cache_dir)
        return dict(config=preset(variant), weights=Path(weights), tokenizer=tok)
    folder = Path(snapshot_download(repo, cache_dir=cache_dir))
    return resolve(str(folder), tokenizer, cache_dir)


def _fetch_tokenizer(name: str, cache_dir=None) -> Path:
    path = Path(name).expanduser()
    if path.exists():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, allow_patterns=TOKENIZER_FILES, cache_dir=cache_dir))


def save_folder(model, tokenizer, out: str | Path, dtype: torch.dtype = torch.bfloat16, extra: dict | None = None):
    """Write a self-contained folder: config.json, model.safetensors (archive layout), tokenizer."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.config.save(out / "config.json")
    tied = _tied_keys(model)
    sd = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous()
          for k, v in model.state_dict().items() if k not in tied}
    meta = {"format": "xsam-core/1", "layout": "archive", **(extra or {})}
    save_file(to_archive_keys(sd), out / "model.safetensors", metadata={k: str(v) for k, v in meta.items()})
    tokenizer.save_pretrained(out)
    return out


def folder_size(path: str | Path) -> int:
    """Bytes of every file under a folder."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
