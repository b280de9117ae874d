"""Issue 10: does a ring's mask leave its hole to what shows through it?

    python scripts/analysis/ring_holes.py [--model DIR ...] [--n 400] [--seed 4242]

Draws held-out scenes (`shapes.generate_scene`) and keeps each ring whose hole (the disc inside it)
shows wall, floor or another thing. Runs panoptic segmentation with every shape named and, for the
segment that lies most on the ring, prints the share of the hole's pixels it claims, apart for holes
showing a thing and for the rest (wall, floor). A right mask claims none: the gallery's shapes-6
ring claims the star seen through its hole (the one panoptic answer of the gallery a person would
call wrong; analysis §40).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.shapes.scenes import RING_HOLE, draw_shape  # noqa: E402

CLASSES = "ins: " + ", ".join(shapes.SHAPES) + "; sem: wall, floor"
MIN_HOLE_PIXELS = 20  # a hole smaller than this says nothing at the mask grid's 2 px a cell


def holes(scene) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(ring mask, hole pixels showing a thing, hole pixels showing wall or floor) of each ring."""
    size = scene.image.shape[:2]
    things = union((t.mask for t in scene.objects), size)
    out = []
    for t in scene.objects:
        if t.shape != "ring":
            continue
        hole = draw_shape("circle", t.center, RING_HOLE * t.radius, 0.0, size)  # the disc the ring leaves open
        if hole.sum() >= MIN_HOLE_PIXELS:
            out.append((t.mask, hole & things, hole & ~things))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=[None])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=4242)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    scenes = [(s, found) for s in (shapes.generate_scene(rng) for _ in range(args.n)) if (found := holes(s))]
    for name in args.model:
        pred = Predictor.load(name)
        claimed = {"thing": [0, 0], "stuff": [0, 0]}  # [claimed, total] pixels
        rings = 0
        for scene, rings_here in scenes:
            segments = pred.predict(Image.fromarray(scene.image), "genseg", CLASSES).segments
            for ring, on_thing, on_stuff in rings_here:
                rings += 1
                seg = max(segments, key=lambda s: (s.mask & ring).sum(), default=None)
                for key, part in (("thing", on_thing), ("stuff", on_stuff)):
                    claimed[key][0] += int((seg.mask & part).sum()) if seg is not None else 0
                    claimed[key][1] += int(part.sum())
        shares = ", ".join(f"hole on {k} {c / max(t, 1):.2f} of {t} px" for k, (c, t) in claimed.items())
        print(f"{name or 'embedded'}: {rings} rings in {len(scenes)} scenes; the ring's segment claims {shares}")


if __name__ == "__main__":
    main()
