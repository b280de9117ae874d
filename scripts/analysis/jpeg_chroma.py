"""Issue 10: how much of the JPEG look's loss is its halved colour resolution (4:2:0 chroma subsampling)?

    python scripts/analysis/jpeg_chroma.py --out runs/robust444 [--n 200] [--seed 987654321]
    python scripts/analysis/jpeg_chroma.py --out runs/robustfit --fit runs/robust200/jpeg [--radius 2] [--eps 1e-5]

The first writes the robustness command's JPEG folder again with the same seed, so the same scenes and
qualities, but saved 4:4:4 (PIL's default is 4:2:0), into OUT/jpeg, and prints the quality each scene was
saved at. The second copies a folder into OUT/jpeg with each image's Cr and Cb planes fitted to its Y
plane by a guided filter (OpenCV contrib, as the mask snap), the colour's edges brought back onto the
brightness edges that survive the subsampling. Either folder is then scored as it stands (analysis §46):

    python -m xsam_core robustness --n 200 --seed 987654321 --looks plain,jpeg --data OUT
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, ".")
from xsam_core import shapes  # noqa: E402


def write_444(folder: Path, n: int, seed: int) -> list[int]:
    """The robustness JPEG folder of (n, seed), saved without chroma subsampling; the qualities used."""
    qualities, save = [], Image.Image.save

    def save_444(image, fp, format=None, **kw):
        if format == "JPEG":
            qualities.append(kw.get("quality"))
            kw["subsampling"] = 0
        return save(image, fp, format=format, **kw)

    Image.Image.save = save_444
    try:
        shapes.write_dataset(folder, n, seed, "jpeg", True)
    finally:
        Image.Image.save = save
    return qualities


def fit_chroma(rgb: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """`rgb` with its colour planes fitted to its brightness (YCrCb, guide and planes in [0, 1])."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255
    for c in (1, 2):
        ycc[..., c] = cv2.ximgproc.guidedFilter(ycc[..., 0], ycc[..., c], radius, eps)
    return cv2.cvtColor(np.clip(ycc * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="a --data folder for the robustness command; writes OUT/jpeg")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=987654321)
    ap.add_argument("--fit", help="a shapes-world folder whose images to fit instead")
    ap.add_argument("--radius", type=int, default=2)
    ap.add_argument("--eps", type=float, default=1e-5)
    args = ap.parse_args(argv)
    folder = Path(args.out) / "jpeg"
    if args.fit:
        shutil.copytree(args.fit, folder)
        for path in sorted((folder / "images").glob("*.png")):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            Image.fromarray(fit_chroma(rgb, args.radius, args.eps)).save(path)
        return 0
    qualities = write_444(folder, args.n, args.seed)
    print("quality per scene:", " ".join(map(str, qualities)))
    print(f"mean {np.mean(qualities):.1f}, range {min(qualities)}-{max(qualities)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
