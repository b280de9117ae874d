"""The one command line of the X-SAM core: `xsam COMMAND ...` (or `python -m xsam_core COMMAND ...`).

    xsam predict --image PATH_OR_DIR [--task auto|TASK] [--text T] [--prompts JSON_OR_@FILE] ...
    xsam tasks
    xsam conformance DIR [--case NAME ...]      replay reference cases of the official implementation
    xsam evaluate --data DIR [--model M]         score a model on a shapes-world folder
    xsam bench [--models embedded,phi3]          per-stage latency and peak memory
    xsam shapes generate --out DIR --n N         generate a shapes-world folder
    xsam train --out RUN [--minutes M]           train the embedded model
    xsam train-looks --out RUN --init M          its image side: every look encoded as the plain scene
    xsam convert WEIGHTS --out DIR               official checkpoint → one bf16 folder

The tools below `predict` and `tasks` keep their own options (`xsam TOOL --help`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from .inference.visual_prompts import VisualPromptError, parse_prompts
from .tasks import TASKS
from .tasks.routing import AUTO, AUTO_TASK

# modeling.quantize.MODES, spelt out: importing it imports torch (tests/test_quantize.py checks they agree)
QUANTIZE_MODES = ["8bit", "4bit", "int8-cpu"]

# name → (module with a `main(argv)`, one line of help); imported only when run (torch is slow to import)
TOOLS = {
    "conformance": (".evaluation.conformance", "replay reference cases and compare every tensor"),
    "evaluate": (".evaluation.evaluate", "score a model on a shapes-world folder"),
    "robustness": (".evaluation.robustness", "scores in every scene look (shapes.looks), side by side"),
    "absent": (".evaluation.absent", "how often absent objects are rejected and present ones kept"),
    "bench": (".evaluation.bench", "per-stage latency and peak memory, optimised vs the official pipeline"),
    "shapes": (".shapes.dataset", "generate shapes-world scenes and requests"),
    "train": (".training.train", "train the embedded model (resumable)"),
    "train-looks": (".training.consistency", "train the embedded model's image side to encode every look as plain"),
    "convert": (".modeling.convert", "official checkpoint + tokenizer → one self-contained bf16 folder"),
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def image_paths(path: Path) -> list[Path]:
    """A file as given, or every image of a folder (not recursive), sorted by name."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def read_prompts(value: str | None):
    """`--prompts` is JSON or @FILE holding JSON; parsed up front so a typo fails before the model loads."""
    if not value:
        return None
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as e:
            raise VisualPromptError(f"cannot read the prompts file: {e}") from e
    return parse_prompts(value)


def output_stem(path: Path, used: set[str]) -> str:
    """The file's stem, or its full name when two inputs share a stem (a.png, a.jpg)."""
    stem = path.stem if path.stem not in used else path.name.replace(".", "_")
    used.add(stem)
    return stem


def cmd_predict(args) -> int:
    try:
        prompts = read_prompts(args.prompts)
    except VisualPromptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = image_paths(args.image) if args.image.exists() else []
    if not paths:
        print(f"error: no images at {args.image}", file=sys.stderr)
        return 2
    # Imported here: torch and transformers take seconds to import, `tasks` needs neither.
    from .inference.predictor import Predictor
    from .inference.processing import load_image
    from .inference.render import overlay
    from .modeling.checkpoint import CheckpointError
    from .modeling.quantize import QuantizeError

    try:
        predictor = Predictor.load(args.model, tokenizer=args.tokenizer, device=args.device, dtype=args.dtype,
                                   quantize=args.quantize)
    except (CheckpointError, OSError, QuantizeError) as e:
        print(f"error: cannot load the model: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failed, used = 0, set()
    for path in paths:
        try:
            start = time.perf_counter()
            img = load_image(path)
            pred = predictor.predict(img, args.task, args.text, prompts, args.threshold, seed=args.seed,
                                     force_answer=args.answer)
            ms = (time.perf_counter() - start) * 1000
            stem = output_stem(path, used)
            (args.out / f"{stem}.json").write_text(json.dumps(pred.to_json(), indent=1))
            overlay(img, pred).save(args.out / f"{stem}_overlay.png")
        except Exception as e:  # one bad image must not stop the batch
            failed += 1
            print(f"{path.name}: error: {e}", file=sys.stderr)
            continue
        print(f"{path.name}: {pred.task} {len(pred.segments)} masks {pred.text!r} {ms:.0f} ms")
        if "ran_as" in pred.info:
            print(f"{path.name}: ran as: {pred.info['ran_as']['title']} — {pred.info['ran_as']['reason']}")
        for note in [pred.info.get("note")] + list(pred.info.get("ignored") or []):
            if note:
                print(f"{path.name}: note: {note}", file=sys.stderr)
    return 1 if failed else 0


def cmd_tasks(args) -> int:
    width = max(map(len, [AUTO, *TASKS]))
    print(f"{AUTO:<{width}}  {AUTO_TASK.description} (the default; rules in xsam_core/tasks/routing.py)")
    for name in TASKS:
        print(f"{name:<{width}}  {TASKS[name].description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="xsam", description="X-SAM: segment anything, from the shell.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("predict", help="run one request on an image or on every image of a folder",
                       description="Run one X-SAM request per image; write <stem>.json (COCO RLE) and "
                                   "<stem>_overlay.png to --out.")
    p.add_argument("--image", type=Path, required=True, metavar="PATH_OR_DIR",
                   help=f"an image, or a folder: every {'/'.join(sorted(IMAGE_SUFFIXES))} in it, sorted")
    p.add_argument("--task", default=AUTO, choices=[AUTO, *TASKS],
                   help="default auto: picked from the text and prompts; see `python -m xsam_core tasks`")
    p.add_argument("--text", default="", help='the question, phrase or class list (genseg: "ins: a, b; sem: c")')
    p.add_argument("--prompts", metavar="JSON_OR_@FILE",
                   help="visual prompts (intseg/vgdseg) as JSON or @file.json; see docs/prompts-json.md")
    p.add_argument("--threshold", type=float, default=0.5, help="score threshold (default 0.5)")
    p.add_argument("--seed", type=int, help="replay the official demo's random choices with this seed")
    p.add_argument("--answer", help="use this answer instead of generating one (teacher forcing, e.g. 'Sure, <SEG>.')")
    p.add_argument("--model", help="model folder, official weights file or hub id (default: the embedded model)")
    p.add_argument("--tokenizer", help="tokenizer folder or hub id (needed with a bare weights file)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="auto (default): bf16 on CUDA and on native-bf16 CPUs for the released model, else float32")
    p.add_argument("--quantize", choices=QUANTIZE_MODES,
                   help="LLM weights: 8bit / 4bit (bitsandbytes, GPUs) or int8-cpu (torch's int8 CPU kernels)")
    p.add_argument("--out", type=Path, default=Path("xsam_out"), help="output folder (default: xsam_out)")
    p.set_defaults(func=cmd_predict)

    # Listed for --help only: main() hands everything after a tool's name to the tool's own parser.
    for name, (_, help_text) in TOOLS.items():
        sub.add_parser(name, help=help_text, add_help=False)

    t = sub.add_parser("tasks", help="list the tasks")
    t.set_defaults(func=cmd_tasks)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in TOOLS:
        module = importlib.import_module(TOOLS[argv[0]][0], __package__)
        return module.main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    return args.func(args)
