"""Issue 10: how much of the JPEG look's loss is its halved colour resolution (4:2:0 chroma subsampling)?

    python scripts/analysis/jpeg_chroma.py --out runs/robust444 [--n 200] [--seed 987654321]

Writes the robustness command's JPEG folder again with the same seed, so the same scenes and qualities,
but saved 4:4:4 (PIL's default is 4:2:0), into OUT/jpeg, and prints the quality each scene was saved at.
The folder is then scored as it stands (analysis §46):

    python -m xsam_core robustness --n 200 --seed 987654321 --looks plain,jpeg --data OUT

The colour fit of §46, first tried here by hand, is now the embedded model's own step for subsampled
JPEG files (`inference.processing.fit_chroma`, analysis §47).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="a --data folder for the robustness command; writes OUT/jpeg")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=987654321)
    args = ap.parse_args(argv)
    qualities = write_444(Path(args.out) / "jpeg", args.n, args.seed)
    print("quality per scene:", " ".join(map(str, qualities)))
    print(f"mean {np.mean(qualities):.1f}, range {min(qualities)}-{max(qualities)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
