"""Issue 10: the JPEG colour fit's rounds of restoring the stored block means, against the fit alone.

    python scripts/analysis/chroma_rounds.py [--scenes 20] [--rounds 0,1,3,6]

For held-out shapes scenes saved as JPEG at the jpeg look's qualities (25-60, PIL's 4:2:0 colour), the
mean error of the Cr/Cb planes against the drawn scene, within 2 px of the shapes' edges and over the
whole image, as decoded, as saved 4:4:4 (the colour at full resolution, a bound for any fit), and after
`processing.fit_chroma` with each number of rounds (0 is the guided fit alone, analysis §46-47); then
the fit's time per image at the sizes the embedded model fits (under twice its 288-px SAM view).
Analysis §48.
"""

from __future__ import annotations

import argparse
import io
import sys
import time

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402
from xsam_core.inference import processing  # noqa: E402
from xsam_core.masks import union  # noqa: E402


def colour_planes(image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2YCrCb)[..., 1:].astype(np.float32)


def jpeg(image: np.ndarray, quality: int, subsampling: int = -1) -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return processing.load_image(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--rounds", default="0,1,3,6")
    args = ap.parse_args()
    rounds = [int(r) for r in args.rounds.split(",")]
    rng = np.random.default_rng(7)
    errors = {name: [] for name in ["decoded", "4:4:4"] + [f"{r} rounds" for r in rounds]}
    rim_kernel = np.ones((5, 5), np.uint8)
    for seed in range(args.scenes):
        scene = shapes.generate_scene(np.random.default_rng([41, seed]))
        things = union([t.mask for t in scene.objects], scene.image.shape[:2]).astype(np.uint8)
        rim = (cv2.dilate(things, rim_kernel) - cv2.erode(things, rim_kernel)) > 0
        quality = int(rng.integers(25, 61))
        truth, decoded = colour_planes(scene.image), jpeg(scene.image, quality)
        outputs = {"decoded": decoded, "4:4:4": jpeg(scene.image, quality, 0)}
        for r in rounds:
            processing.CHROMA_ROUNDS = r
            outputs[f"{r} rounds"] = processing.fit_chroma(decoded, 3)
        for name, out in outputs.items():
            off = np.abs(colour_planes(out) - truth)
            errors[name].append((off[rim].mean(), off.mean()))
    print(f"colour error (8-bit Cr/Cb) over {args.scenes} scenes: within 2 px of an edge / whole image")
    for name, values in errors.items():
        rim_error, whole = np.mean(values, 0)
        print(f"  {name:9s} {rim_error:6.2f} {whole:6.2f}")
    print("fit time (ms, median of 7)")
    scene = shapes.generate_scene(np.random.default_rng([41, 0])).image
    for w, h in ((222, 222), (400, 300), (575, 431)):
        decoded = jpeg(cv2.resize(scene, (w, h)), 40)
        line = []
        for r in rounds:
            processing.CHROMA_ROUNDS = r
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                processing.fit_chroma(decoded, 3)
                times.append(time.perf_counter() - t0)
            line.append(f"{r} rounds {np.median(times) * 1e3:5.1f}")
        print(f"  {w}x{h}: " + ", ".join(line))


if __name__ == "__main__":
    main()
