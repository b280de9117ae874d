"""The command line the analysis scripts over shapes-world folders share: --data DIR [DIR ...] [--model DIR]."""

from __future__ import annotations

import argparse

from xsam_core.inference.predictor import Predictor


def folders_and_predictor(doc: str, argv=None) -> tuple[list[str], Predictor]:
    """The --data folders and a Predictor of --model (default: the embedded model); `doc` is the
    script's docstring, whose first paragraph becomes the help text."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--model")
    args = ap.parse_args(argv)
    return args.data, Predictor.load(args.model)
