"""Issue 10: where a look's loss in referring and reasoning comes from — the image's encoding, or the
mask edges snapped to its pixels?

    python scripts/analysis/look_gap_parts.py [--looks jpeg,noise] [--n 60] [--seed 987654321] [--model DIR]

Draws `--n` plain scenes and each one again in a look (`shapes.redraw_scene`: the same things at the
same pixels) and asks the plain scene's referring and reasoning requests of the look's image four ways,
by handing the Predictor's image cache the parts of the plain image's entry (`inference/cache.py`):

* ``own``: as the look's image is answered in the app;
* ``plain encoding``: with the plain image's encodings (both encoders, the pixel decoder), edges
  snapped to the look's pixels;
* ``plain tokens``: only what the LLM reads from the plain image (its image tokens and the region
  sampler's map), the mask decoder's pixel features the look's own;
* ``plain pixels``: the other half: the look's image tokens, the plain image's pixel features;
* ``plain edges``: the look's own encodings, edges snapped to the plain image's pixels;
* ``both plain``: both, which leaves only what else reads the image (nothing in these tasks);

and the plain image itself. Printed: the mean mask IoU of each (the official masks, as `evaluate` scores them).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.evaluation.metrics import iou  # noqa: E402
from xsam_core.inference.cache import ImageEntry, image_key  # noqa: E402
from xsam_core.inference.predictor import Predictor  # noqa: E402
from xsam_core.inference.processing import load_image  # noqa: E402
from xsam_core.masks import union  # noqa: E402
from xsam_core.modeling.model import ImageEncoding  # noqa: E402

WAYS = ("plain image", "own", "plain encoding", "plain tokens", "plain pixels", "plain edges", "both plain")
TASKS = ("refseg", "reaseg")


def request_iou(pred, request: dict, scene) -> float:
    masks = {t.id: t.mask for t in scene.objects} | {i: scene.stuff[name] for name, i in scene.stuff_ids.items()}
    truth = union((masks[i] for i in request["targets"]), scene.image.shape[:2])
    return iou(union([s.mask for s in pred.official_segments], scene.image.shape[:2]), truth)


def answer_ways(p: Predictor, scene, drawn: np.ndarray, request: dict) -> dict[str, float]:
    def ask(image):
        return request_iou(p.predict(image, request["task"], request["text"], request["prompts"]), request, scene)

    look_key = image_key(load_image(drawn))
    p.cache.clear()
    scores = {"plain image": ask(scene.image)}  # also builds the plain entry's encodings and its edge filter
    plain = p.cache.get(image_key(load_image(scene.image)))
    scores["own"] = ask(drawn)
    own = p.cache.get(look_key)
    def mixed(tokens, pixels):
        return ImageEncoding(tokens.image_tokens, tokens.seg_map, pixels.pixels)

    ways = {"plain encoding": ImageEntry(plain.encoding, plain.scaled, plain.canvas),
            "plain tokens": ImageEntry(mixed(plain.encoding, own.encoding), own.scaled, own.canvas),
            "plain pixels": ImageEntry(mixed(own.encoding, plain.encoding), own.scaled, own.canvas),
            "plain edges": ImageEntry(own.encoding, own.scaled, own.canvas, snaps=plain.snaps),
            "both plain": ImageEntry(plain.encoding, plain.scaled, plain.canvas, snaps=plain.snaps)}
    for way, entry in ways.items():
        p.cache.put(look_key, entry)
        scores[way] = ask(drawn)
    return scores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--looks", default="jpeg", help=f"comma-separated, of {', '.join(shapes.SAME_PIXEL_LOOKS)}")
    ap.add_argument("--n", type=int, default=60, help="scenes")
    ap.add_argument("--seed", type=int, default=987654321)
    ap.add_argument("--model", help="model folder (default: the embedded model)")
    args = ap.parse_args(argv)
    p = Predictor.load(args.model)
    print(f"{'look':8s} {'n':>4s} " + " ".join(f"{w:>14s}" for w in WAYS))
    for look in args.looks.split(","):
        rows = []
        for i in range(args.n):
            rng = np.random.default_rng([args.seed, i])
            scene = shapes.generate_scene(rng)
            drawn = shapes.redraw_scene(scene, look, rng)
            rows += [answer_ways(p, scene, drawn, r) for r in shapes.make_tasks(scene, rng) if r["task"] in TASKS]
        print(f"{look:8s} {len(rows):4d} " + " ".join(f"{np.mean([r[w] for r in rows]):14.3f}" for w in WAYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
