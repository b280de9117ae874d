"""Convert an official X-SAM checkpoint (+ its tokenizer) into one self-contained folder.

    python -m xsam_core convert --checkpoint PATH_OR_HUB --tokenizer PATH_OR_HUB --out DIR
                                [--dtype bfloat16|float32|float16] [--config PRESET_OR_config.json]

The checkpoint is a `pytorch_model.bin` / `.safetensors` in the archive or main-branch key layout,
a self-contained folder, or a hub id (`hao9610/X-SAM[:variant]`, see `checkpoint.resolve`). The
architecture comes from `--config`, else from the source (hub variant, folder config.json), else
it is detected from the weights. Loading is strict: any missing, unexpected or mis-shaped key stops
the conversion with a non-zero exit. The folder holds config.json (project format),
model.safetensors (archive key layout, tied copies dropped) and the tokenizer with <SEG>, <p>, </p>.

Memory: the weights are read memory-mapped (`torch.load(mmap=True)`, safetensors' mmap backend), so
the source costs page cache, not process memory. The model is built without initialisation and
takes the source tensors by assignment. When the output dtype equals the stored one (the released
file is bf16: `--dtype bfloat16`), no tensor is copied at all and safetensors writes from the
mapped pages: the peak is about one model's worth of page cache. Another dtype casts each tensor
once: the peak is the converted model in RAM (9.3 GB bf16 → 18.5 GB for float32) plus page cache;
never two copies of the model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from ..inference.predictor import build_model
from .checkpoint import (
    CheckpointError,
    detect_layout,
    load_tokenizer,
    load_weights,
    preset_for_state_dict,
    read_state_dict,
    resolve,
    save_folder,
)
from .config import PRESETS, SPECIAL_TOKENS, XSamConfig, preset

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


def choose_config(config: str | None, source_config: XSamConfig | None, sd: dict) -> tuple[XSamConfig, str]:
    """The architecture, and where it came from (for the summary)."""
    if config in PRESETS:
        return preset(config), f"{config} (--config)"
    if config:
        try:
            return XSamConfig.load(config), f"{config} (--config)"
        except ValueError as e:  # not JSON, or not a config format we know
            raise CheckpointError(f"--config {config}: {e}") from e
    if source_config is not None:
        return source_config, f"{source_config.name} (from the source)"
    name = preset_for_state_dict(sd)
    return preset(name), f"{name} (detected from the weights)"


def check_tokenizer(cfg: XSamConfig, tokenizer, rows: int) -> None:
    """The tokenizer must give X-SAM's tokens the ids the weights were trained with."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    if cfg.special_token_ids and ids != cfg.special_token_ids:
        raise CheckpointError(f"the tokenizer gives {ids}, the model expects {cfg.special_token_ids}: wrong tokenizer?")
    if max(ids.values()) >= rows:
        raise CheckpointError(f"tokenizer ids {ids} do not fit the {rows}-row embedding table: wrong tokenizer?")
    cfg.special_token_ids = ids


def convert(checkpoint: str, tokenizer: str | None, out: str | Path, dtype: str = "bfloat16",
            config: str | None = None, cache_dir: str | None = None) -> dict:
    """Convert and write the folder; returns the summary."""
    files = resolve(checkpoint, tokenizer, cache_dir)
    sd = read_state_dict(files["weights"])
    layout = detect_layout(sd)
    cfg, origin = choose_config(config, files["config"], sd)
    model = build_model(cfg, DTYPES[dtype])
    try:
        load_weights(model, sd, DTYPES[dtype])
    except CheckpointError as e:  # say which architecture was tried: detection may have picked the wrong one
        raise CheckpointError(f"architecture {origin}: {e}\n(pass --config if that is not the right one)") from e
    del sd  # the model now holds the (mapped or cast) tensors
    tok = load_tokenizer(files["tokenizer"])
    check_tokenizer(cfg, tok, model.llm.get_input_embeddings().weight.shape[0])
    folder = save_folder(model, tok, out, DTYPES[dtype], extra={"source": checkpoint, "source_layout": layout})
    with safe_open(folder / "model.safetensors", "pt") as f:
        tensors = len(f.keys())
    return dict(preset=origin, layout=layout, weights=str(files["weights"]), tensors=tensors,
                bytes=(folder / "model.safetensors").stat().st_size, dtype=dtype, out=str(folder))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam convert", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="weights file, folder, or hub id (hao9610/X-SAM[:variant])")
    ap.add_argument("--tokenizer", help="tokenizer folder or hub id (default: the variant's or the folder's)")
    ap.add_argument("--out", required=True, help="the folder to write")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    ap.add_argument("--config", help=f"a preset ({', '.join(PRESETS)}) or a config.json (default: detected)")
    ap.add_argument("--cache-dir", help="Hugging Face cache for hub ids (default: HF_HUB_CACHE)")
    args = ap.parse_args(argv)
    try:
        summary = convert(args.checkpoint, args.tokenizer, args.out, args.dtype, args.config, args.cache_dir)
    except (CheckpointError, OSError) as e:  # OSError: unreadable files, hub files not cached offline
        print(f"error: {e}", file=sys.stderr)
        return 1
    for key, value in summary.items():
        print(f"{key:8s} {value}")
    return 0

