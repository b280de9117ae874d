"""How well "not there" works: referring requests for objects a scene does not hold, and for ones it does.

    xsam absent [--model M] [--n 60] [--seed 4242] [--threshold 0.5]

On generated shapes-world scenes: for each scene, the world's own referring request (the object is
present) and "the <colour> <shape>" for a colour and shape no object of the scene has (absent). A
request is rejected when its best mask scores under the threshold (the result then says "no match").
Printed: the share of absent objects rejected (higher is better) and of present ones wrongly
rejected (lower is better), as a line and as JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from .. import shapes


def rates(predictor, n: int = 60, seed: int = 4242, threshold: float = 0.5) -> dict:
    rng = np.random.default_rng(seed)
    absent_rejected = present_rejected = present_total = 0
    for _ in range(n):
        scene = shapes.generate_scene(rng)
        request = next((r for r in shapes.make_tasks(scene, rng) if r["task"] == "refseg"), None)
        absent = predictor.predict(scene.image, "refseg", shapes.absent_refseg(scene, rng)["text"], threshold=threshold)
        absent_rejected += "no_match" in absent.info
        if request is not None:
            present = predictor.predict(scene.image, "refseg", request["text"], threshold=threshold)
            present_rejected += "no_match" in present.info
            present_total += 1
    return {"threshold": threshold, "scenes": n, "absent_rejected": absent_rejected / n,
            "present_rejected": present_rejected / max(present_total, 1), "present_requests": present_total}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="xsam absent", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder, weights file or hub id (default: the embedded model)")
    ap.add_argument("--n", type=int, default=60, help="scenes (default 60)")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args(argv)
    from ..inference.predictor import Predictor

    result = rates(Predictor.load(args.model), args.n, args.seed, args.threshold)
    print(f"absent objects rejected {result['absent_rejected']:.1%} of {result['scenes']}; present objects wrongly "
          f"rejected {result['present_rejected']:.1%} of {result['present_requests']} (threshold {args.threshold})")
    print(json.dumps(result))
    return 0
