"""Give a model folder whose LLM ties its output head to its input embeddings a head of its own.

    python scripts/untie_lm_head.py --out runs/untied checkpoints/xsam-tiny-shapes

Writes a copy of the folder (config, tokenizer, heads-only state.pt; not the model card) whose config
says ``tie_word_embeddings: false`` and whose weights add ``llm.lm_head.weight``, a copy of the input
embeddings: the same model, answer for answer, until the head is trained. Trained alone
(`train --train-only llm.lm_head`), the head moves which word the LLM says next and nothing else: the
hidden states that the mask decoder reads stay bit for bit, so every mask of an unchanged answer does.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

EMBEDDINGS, HEAD = "llm.model.embed_tokens.weight", "llm.lm_head.weight"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    config = json.loads((args.model / "config.json").read_text())
    if not config["llm"].get("tie_word_embeddings"):
        raise SystemExit(f"{args.model}: the LLM's head is not tied")
    args.out.mkdir(parents=True, exist_ok=True)
    for f in args.model.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "config.json", "README.md"):
            shutil.copy(f, args.out / f.name)
    config["llm"]["tie_word_embeddings"] = False
    (args.out / "config.json").write_text(json.dumps(config, indent=2))
    tensors = load_file(args.model / "model.safetensors")
    tensors[HEAD] = tensors[EMBEDDINGS].clone()
    with safe_open(args.model / "model.safetensors", "pt") as f:
        meta = f.metadata()
    save_file(tensors, args.out / "model.safetensors", metadata=meta)


if __name__ == "__main__":
    main()
