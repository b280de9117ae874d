"""Scene looks: other ways of drawing the same world, so the embedded model does not learn one renderer.

A look changes how a scene is drawn, never what it holds: the things, their words and the masks
follow the same rules (a thing's mask is the pixels painted for it, before any image-wide effect).

* ``tones``: wall and floor tints from a wider range (dark to light, more colourful);
* ``texture``: strong stripes, checks and grain on the wall and floor;
* ``noise``: Gaussian pixel noise over the whole image;
* ``blur``: a Gaussian blur over the whole image;
* ``jpeg``: JPEG compression at a low quality, with PIL's (and most cameras') 4:2:0 colour: the
  scene keeps the file (`Scene.file`), so a dataset holds it as uploaded;
* ``size``: image sides anywhere from 96 to 640 px;
* ``aspect``: a wide or tall image (sides 2-3.5 to 1);
* ``outline``: every thing drawn with a darker rim of its own colour.

`generate_scene(rng, look=...)` takes one; training draws a random one for part of its scenes
(`random_look`), and ``xsam shapes generate --look NAME`` writes a held-out set of one look.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
from PIL import Image

LOOKS = ("tones", "texture", "noise", "blur", "jpeg", "size", "aspect", "outline")
SIZE_SIDES = (96, 640)
ASPECT_RATIOS = (2.0, 3.5)
ASPECT_LONG_SIDE = (256, 640)


def check_look(look: str | None) -> str | None:
    if look is not None and look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; looks: {', '.join(LOOKS)}")
    return look


def random_look(rng: np.random.Generator, share: float, weights: dict[str, float] | None = None) -> str | None:
    """A random look for `share` of the scenes, else None (the plain renderer); the looks equally
    likely, or in proportion to `weights` (a look not named weighs 1)."""
    if rng.random() >= share:
        return None
    p = np.array([(weights or {}).get(look, 1.0) for look in LOOKS])
    return LOOKS[rng.choice(len(LOOKS), p=p / p.sum())]


def image_size(rng: np.random.Generator, look: str | None, plain_sides: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a new scene."""
    if look == "size":
        return tuple(int(rng.integers(SIZE_SIDES[0], SIZE_SIDES[1] + 1)) for _ in range(2))
    if look == "aspect":
        long = int(rng.integers(ASPECT_LONG_SIDE[0], ASPECT_LONG_SIDE[1] + 1))
        short = round(long / rng.uniform(*ASPECT_RATIOS))
        return (long, short) if rng.random() < 0.5 else (short, long)
    return tuple(int(rng.integers(plain_sides[0], plain_sides[1] + 1)) for _ in range(2))


def wide_tint(rng: np.random.Generator) -> np.ndarray:
    """A wall or floor tint for ``tones``: any brightness, channel spread up to 70 (still far from
    the saturated thing colours, whose channel spread is 150 or more)."""
    return np.clip(np.round(rng.uniform(25, 235) + rng.uniform(-35, 35, 3)), 0, 255)


def strong_texture(rng: np.random.Generator, h: int, w: int, tint: np.ndarray) -> np.ndarray:
    """Stripes or checks of amplitude 8-20 plus grain, on luminance, for ``texture``."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(8, 30)
    if rng.random() < 0.5:
        phi = rng.uniform(0, math.pi)
        wave = np.sin((xs * math.cos(phi) + ys * math.sin(phi)) * (2 * math.pi / period))
    else:
        wave = np.sign(np.sin(xs * (2 * math.pi / period)) * np.sin(ys * (2 * math.pi / period)))
    light = rng.uniform(8, 20) * wave + rng.normal(0, rng.uniform(2, 6), (h, w))
    return np.clip(tint.astype(np.float32) + light[..., None], 0, 255).astype(np.uint8)


def draw_outlines(image: np.ndarray, masks: list[np.ndarray], colours: list[tuple]) -> None:
    """``outline``: a rim of 1-2 px inside each thing, its colour at 55 % brightness (in place)."""
    width = max(1, round(min(image.shape[:2]) / 150))
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    for mask, colour in zip(masks, colours):
        rim = mask & ~cv2.erode(mask.view(np.uint8), kernel).view(bool)
        image[rim] = np.round(np.asarray(colour) * 0.55).astype(np.uint8)


def finish(image: np.ndarray, look: str | None, rng: np.random.Generator) -> np.ndarray:
    """The image-wide effects ``noise`` and ``blur`` on a drawn image; others pass through (``jpeg`` keeps
    its file: `jpeg_file`, then `decode`)."""
    if look == "noise":
        noisy = image.astype(np.float32) + rng.normal(0, rng.uniform(4, 12), image.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    if look == "blur":
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.5))
    return image


def jpeg_file(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """``jpeg``: the image as a JPEG file at a random low quality."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(rng.integers(25, 61)))
    return buf.getvalue()


def decode(file: bytes) -> np.ndarray:
    """An image file's RGB pixels, decoded by PIL as uploads are (`inference.processing.load_image`)."""
    return np.asarray(Image.open(io.BytesIO(file)).convert("RGB")).copy()
