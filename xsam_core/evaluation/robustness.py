"""Scores of a model on held-out scenes in every look, side by side: does it hold when a scene is drawn
another way (`shapes.looks`)?

    python -m xsam_core robustness --n 60 --seed 987654321 [--model DIR] [--json out.json] [--one-question]
                                   [--tasks refseg,reaseg,...]

Writes one shapes-world folder per look (plain renderer first) under --data (a temporary folder by
default; a folder already there is used when it was written with the same n, seed, look and chat
questions), evaluates the model on each with `evaluate`, and prints one row per look with the headline
metric of every task and its difference from the plain scenes, then how many questions each chat cell
holds. Every scene is asked its whole chat set (`shapes.write_dataset`'s ``chat_sets``): asked one
question a scene, as before, a chat cell of 60 scenes holds 15-24 questions and one answer moves it by
about 0.05; ``--one-question`` measures that way again. ``--tasks`` scores only those tasks (a run that
trained the mask side alone leaves every word, and so chat, as it was) and prints only their columns.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .. import shapes
from ..inference.predictor import Predictor
from .evaluate import evaluate

HEADLINES = {  # column: (task key, metric)
    "refseg": ("refseg", "miou"), "reaseg": ("reaseg", "miou"), "intseg": ("intseg", "miou"),
    "vgdseg": ("vgdseg", "miou"), "PQ": ("genseg/panoptic", "pq"), "PQth": ("genseg/panoptic", "pq_things"),
    "gcg": ("gcgseg", "phrase_miou"), "gcg-obj": ("gcgseg", "object_recall"), "chat": ("chat", "accuracy"),
    "count": ("chat", "accuracy_count"), "colour": ("chat", "accuracy_colour"), "exists": ("chat", "accuracy_exists"),
}


CHAT_KINDS = ("count", "colour", "exists")


def headline(results: dict) -> dict[str, float]:
    """The headline columns of the tasks that were scored."""
    return {col: results[task][metric] for col, (task, metric) in HEADLINES.items() if metric in results.get(task, {})}


def chat_questions(results: dict) -> dict[str, int]:
    return {kind: results.get("chat", {}).get(f"n_{kind}", 0) for kind in CHAT_KINDS}


def written_as(folder: Path, n: int, seed: int, look: str | None, chat_sets: bool) -> bool:
    """Whether `folder` holds a shapes-world set written with these arguments."""
    if not (folder / "annotations.json").exists():
        return False
    info = shapes.load_dataset(folder)[0]["info"]
    return ((info.get("version"), info["n"], info["seed"], info["look"], info.get("chat_sets", False))
            == (shapes.VERSION, n, seed, look, chat_sets))


def table(rows: dict[str, dict[str, float]]) -> str:
    plain = rows.get("plain", {})
    columns = [c for c in HEADLINES if all(c in row for row in rows.values())]
    lines = [f"{'look':8s} " + " ".join(f"{c:>7s}" for c in columns)]
    for look, row in rows.items():
        lines.append(f"{look:8s} " + " ".join(f"{row[c]:7.3f}" for c in columns))
        if look != "plain" and plain:
            lines.append(f"{'  diff':8s} " + " ".join(f"{row[c] - plain[c]:+7.3f}" for c in columns))
    return "\n".join(lines)


def questions_line(questions: dict[str, dict[str, int]]) -> str:
    per_look = ", ".join(f"{look} " + "/".join(str(n[k]) for k in CHAT_KINDS) for look, n in questions.items())
    return f"chat questions ({'/'.join(CHAT_KINDS)}): {per_look}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam robustness", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder, weights file or hub id (default: the embedded model)")
    ap.add_argument("--n", type=int, default=60, help="scenes per look")
    ap.add_argument("--seed", type=int, default=987654321, help="a seed never used in training")
    ap.add_argument("--looks", default=",".join(("plain", *shapes.LOOKS)), help="comma-separated; plain = no look")
    ap.add_argument("--data", help="folder for the generated sets (kept; default: a temporary one)")
    ap.add_argument("--json", help="write the headline scores here")
    ap.add_argument("--one-question", action="store_true", help="one chat question a scene, not its chat set")
    ap.add_argument("--tasks", help="comma-separated task keys to score (as `evaluate --task`; default: all)")
    args = ap.parse_args(argv)
    chat_sets = not args.one_question
    predictor = Predictor.load(args.model)
    rows, questions = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data or tmp)
        for look in args.looks.split(","):
            folder, drawn = root / look, None if look == "plain" else look
            if not written_as(folder, args.n, args.seed, drawn, chat_sets):
                shapes.write_dataset(folder, args.n, args.seed, drawn, chat_sets)
            results = evaluate(predictor, folder, tasks=args.tasks.split(",") if args.tasks else None)
            rows[look] = headline(results)
            if "chat" in results:
                questions[look] = chat_questions(results)
            print(f"# {look} done", file=sys.stderr)
    print(table(rows))
    if questions:
        print(questions_line(questions))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": predictor.name, "n": args.n, "seed": args.seed,
                                               "chat_sets": chat_sets, "scores": rows, "chat_questions": questions},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
