"""Issue 10: does a ring's mask leave its hole to what shows through it?

    python scripts/analysis/ring_holes.py [--model DIR ...] [--n 400] [--seed 4242]

Draws held-out scenes (`shapes.generate_scene`) and keeps each ring whose hole (the disc inside it)
shows wall, floor or another thing. Runs panoptic segmentation with every shape named and, for the
segment that lies most on the ring, prints the share of the hole's pixels it claims, apart for holes
showing a thing and for the rest (wall, floor). Then, of the rings whose hole shows a thing, how many claim none
of it and how many most of it, and the share claimed within 2 px of the ring (the mask grid's edge
error) and farther in. A right mask claims none: the gallery's shapes-6
ring claims the star seen through its hole (the one panoptic answer of the gallery a person would
call wrong; analysis §40).
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.shapes.scenes import RING_HOLE, draw_shape  # noqa: E402

CLASSES = "ins: " + ", ".join(shapes.SHAPES) + "; sem: wall, floor"
MIN_HOLE_PIXELS = 20  # a hole smaller than this says nothing at the mask grid's 2 px a cell
NEAR = np.ones((5, 5), np.uint8)  # dilating the ring by this reaches 2 px into its hole


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
        claimed = {"thing": [0, 0], "stuff": [0, 0], "near": [0, 0], "far": [0, 0]}  # [claimed, total] pixels
        rings, per_ring = 0, []  # the share of a hole's thing pixels claimed, per ring whose hole shows one
        for scene, rings_here in scenes:
            segments = pred.predict(Image.fromarray(scene.image), "genseg", CLASSES).segments
            for ring, on_thing, on_stuff in rings_here:
                rings += 1
                seg = max(segments, key=lambda s: (s.mask & ring).sum(), default=None)
                mine = seg.mask if seg is not None else np.zeros_like(ring)
                near = cv2.dilate(ring.view(np.uint8), NEAR).view(bool)
                parts = (("thing", on_thing), ("stuff", on_stuff), ("near", on_thing & near), ("far", on_thing & ~near))
                for key, part in parts:
                    claimed[key][0] += int((mine & part).sum())
                    claimed[key][1] += int(part.sum())
                if on_thing.any():
                    per_ring.append((mine & on_thing).sum() / on_thing.sum())
        shares = ", ".join(f"hole on {k} {claimed[k][0] / max(claimed[k][1], 1):.2f} of {claimed[k][1]} px"
                           for k in ("thing", "stuff"))
        print(f"{name or 'embedded'}: {rings} rings in {len(scenes)} scenes; the ring's segment claims {shares}")
        per_ring = np.array(per_ring)
        near, far = (claimed[k][0] / max(claimed[k][1], 1) for k in ("near", "far"))
        print(f"   {len(per_ring)} holes show a thing: {np.mean(per_ring == 0):.2f} of them claim none of it, "
              f"{np.mean(per_ring > 0.5):.2f} more than half; claimed within 2 px of the ring {near:.2f}, "
              f"farther in {far:.2f}")


if __name__ == "__main__":
    main()
