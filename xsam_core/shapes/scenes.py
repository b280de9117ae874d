"""Shapes-world scenes: the random layout, the pixel-exact drawing and the masks of one image.

An RGB image (width and height each 128-320 px) split by a horizontal line into two *stuff*
regions, ``wall`` (top) and ``floor`` (bottom), with different muted tints and a light texture,
and 1-6 *things* drawn over them in z-order:

* shapes: ``circle``, ``square``, ``triangle``, ``star``, ``ring``, ``cross``;
* colours (flat, saturated RGB): ``red``, ``green``, ``blue``, ``yellow``, ``purple``, ``orange``,
  ``pink``, ``cyan``;
* sizes: ``small`` (circumscribed-circle diameter 0.12-0.18 of min(H, W)) or ``large`` (0.26-0.36).

Things may occlude each other; every thing keeps at least half of its full area (and 40 px)
visible, and two things of one colour never touch. Masks are the exact pixels painted (no
anti-aliasing): a thing's mask is where the image has its colour, and the thing masks plus the
visible ``wall`` and ``floor`` masks tile the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..masks import box_xywh, mask_box, union
from . import looks

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
STUFF = ("wall", "floor")
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (245, 215, 30),
    "purple": (140, 50, 190),
    "orange": (250, 140, 20),
    "pink": (250, 130, 200),
    "cyan": (30, 200, 220),
}
# Circumscribed-circle diameter as a fraction of min(H, W); the gap keeps the words unambiguous.
SIZES = {"small": (0.12, 0.18), "large": (0.26, 0.36)}

IMAGE_SIDE = (128, 320)
MAX_THINGS = 6
MIN_VISIBLE_FRACTION = 0.5
MIN_PIXELS = 40
PLACEMENT_TRIES = 20
RING_HOLE = 0.5             # inner / outer radius
CROSS_MAX_TILT = math.radians(20)  # a cross stays a plus sign


@dataclass
class Thing:
    """One shape of a scene. ``id`` is its z-order (1 = bottom) and its annotation id in the scene."""

    id: int
    shape: str
    colour: str
    size: str
    mask: np.ndarray               # visible pixels, bool H x W
    bbox: list[int]                # [x, y, w, h] of the visible mask
    centroid: tuple[float, float]  # (x, y) of the visible mask
    area: int                      # visible pixels
    full_area: int                 # pixels of the whole shape before occlusion
    center: tuple[float, float]    # geometry, for redrawing with draw_shape()
    radius: float
    angle: float


@dataclass
class Scene:
    image: np.ndarray               # H x W x 3 uint8 RGB
    objects: list[Thing]            # in z-order, ids 1..n
    stuff: dict[str, np.ndarray]    # visible "wall" / "floor" masks (present ones only)
    file: bytes | None = None       # the image as a file where a look compresses it (``jpeg``)

    @property
    def stuff_ids(self) -> dict[str, int]:
        """Scene-local annotation ids of the stuff regions: after the things, wall before floor."""
        return {name: len(self.objects) + i for i, name in enumerate(self.stuff, 1)}


# ---------------------------------------------------------------- drawing

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel vertex positions without anti-aliasing


def _regular(radii: list[float], start: float = -math.pi / 2) -> np.ndarray:
    """Polygon vertices at equal angles with the given radii (unit circumradius)."""
    angles = start + np.arange(len(radii)) * 2 * math.pi / len(radii)
    return np.stack([np.cos(angles), np.sin(angles)], 1) * np.asarray(radii)[:, None]


def _cross_outline() -> np.ndarray:
    arm, half = 3.0, 1.0  # arm length : half arm width; scaled to unit circumradius below
    quarter = [(half, arm), (half, half), (arm, half)]
    points = []
    for k in range(4):  # rotate one quarter by 90 degrees four times
        c, s = [(1, 0), (0, -1), (-1, 0), (0, 1)][k]
        points += [(c * x - s * y, s * x + c * y) for x, y in quarter]
    return np.array(points) / math.hypot(arm, half)


_OUTLINES = {
    "square": _regular([1] * 4, math.pi / 4),
    "triangle": _regular([1] * 3),
    "star": _regular([1, 0.5] * 5),
    "cross": _cross_outline(),
}


def draw_shape(shape: str, center: tuple[float, float], radius: float, angle: float,
               size: tuple[int, int]) -> np.ndarray:
    """Full (amodal) bool mask H x W of a shape with the given circumradius and rotation."""
    canvas = np.zeros(size, np.uint8)
    one = 1 << _SHIFT
    if shape in ("circle", "ring"):
        c = (round(center[0] * one), round(center[1] * one))
        cv2.circle(canvas, c, round(radius * one), 1, -1, cv2.LINE_8, _SHIFT)
        if shape == "ring":
            cv2.circle(canvas, c, round(RING_HOLE * radius * one), 0, -1, cv2.LINE_8, _SHIFT)
    else:
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        points = _OUTLINES[shape] @ rot.T * radius + np.asarray(center)
        cv2.fillPoly(canvas, [np.round(points * one).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    return canvas.view(bool)


# ---------------------------------------------------------------- scenes

def pick(rng: np.random.Generator, items):
    """One item of a sequence, drawn with the scene's generator."""
    return items[rng.integers(len(items))]


@dataclass
class _Draft:
    shape: str
    colour: str
    size: str
    center: tuple[float, float]
    radius: float
    angle: float
    amodal: np.ndarray
    visible: np.ndarray


_HALO = np.ones((3, 3), np.uint8)


def _fits(amodal: np.ndarray, colour: str, drafts: list[_Draft]) -> bool:
    """Can a shape go on top without hiding too much of any earlier one or touching its colour?"""
    halo = cv2.dilate(amodal.view(np.uint8), _HALO).view(bool)
    for d in drafts:
        left = d.visible & ~amodal
        if left.sum() < max(MIN_VISIBLE_FRACTION * d.amodal.sum(), MIN_PIXELS):
            return False
        if d.colour == colour and (halo & left).any():  # same colours touching would merge
            return False
    return True


def _place_things(rng: np.random.Generator, h: int, w: int, n: int) -> list[_Draft]:
    """Place up to n shapes bottom-up; a shape with no valid spot is dropped (the kept set is final)."""
    drafts: list[_Draft] = []
    for _ in range(n):
        shape, colour, size = pick(rng, SHAPES), pick(rng, list(COLOURS)), pick(rng, list(SIZES))
        radius = rng.uniform(*SIZES[size]) * min(h, w) / 2
        tilt = CROSS_MAX_TILT if shape == "cross" else math.pi
        for _ in range(PLACEMENT_TRIES):
            # One pixel of margin: shapes stay whole, so only occlusion hides parts of them.
            center = (rng.uniform(radius + 1, w - 2 - radius), rng.uniform(radius + 1, h - 2 - radius))
            angle = rng.uniform(-tilt, tilt)
            amodal = draw_shape(shape, center, radius, angle, (h, w))
            if amodal.sum() >= MIN_PIXELS and _fits(amodal, colour, drafts):
                for d in drafts:
                    d.visible &= ~amodal
                drafts.append(_Draft(shape, colour, size, center, radius, angle, amodal, amodal.copy()))
                break
    return drafts


def _thing(thing_id: int, d: _Draft) -> Thing:
    ys, xs = np.nonzero(d.visible)
    return Thing(thing_id, d.shape, d.colour, d.size, d.visible, box_xywh(mask_box(d.visible)),
                 (float(xs.mean()), float(ys.mean())), int(len(xs)), int(d.amodal.sum()),
                 d.center, d.radius, d.angle)


def _stuff_tints(rng: np.random.Generator, draw=None) -> tuple[np.ndarray, np.ndarray]:
    """Muted tints (channel spread <= 40, far from the saturated thing colours), >= 60 apart;
    `draw(rng)` draws each tint instead (a look's)."""
    def tint():
        return draw(rng) if draw else np.round(rng.uniform(60, 200) + rng.uniform(-20, 20, 3))
    wall, floor = tint(), tint()
    while np.linalg.norm(wall - floor) < 60:
        floor = tint()
    return wall, floor


def _texture(rng: np.random.Generator, h: int, w: int, tint: np.ndarray) -> np.ndarray:
    """Soft stripes plus light noise, on luminance only so the channel spread stays muted."""
    phi, period = rng.uniform(0, math.pi), rng.uniform(12, 40)
    amplitude, phase = rng.uniform(2, 6), rng.uniform(0, 2 * math.pi)
    xs = np.arange(w, dtype=np.float32) * math.cos(phi)
    ys = np.arange(h, dtype=np.float32)[:, None] * math.sin(phi)
    light = amplitude * np.sin((xs + ys) * (2 * math.pi / period) + phase)
    light += rng.integers(-3, 4, (h, w))
    # Clipped: a ``tones`` tint can sit at 0 or 255, where an unclipped cast wraps round and paints
    # saturated stripes that read as things (11 % of tones scenes before the clip).
    return np.clip(tint.astype(np.float32) + light[..., None], 0, 255).astype(np.uint8)


def generate_scene(rng: np.random.Generator, *, width: int | None = None, height: int | None = None,
                   n_things: int | None = None, look: str | None = None) -> Scene:
    """A random scene; same rng state gives the same scene. Sizes and thing count may be fixed;
    `look` (one of `looks.LOOKS`) draws it another way, with the same rules for its content.

    A look that keeps the geometry (`SAME_PIXEL_LOOKS`) draws the plain scene from `rng`, then redraws
    it with a stream spawned from `rng` (spawning leaves `rng`'s own draws as they were): the scene
    holds the plain renderer's things, and what `rng` draws next (the requests) is the plain scene's
    too, so a look's held-out score differs from plain's by the look alone, not by other requests."""
    looks.check_look(look)
    if look in SAME_PIXEL_LOOKS:
        look_rng = rng.spawn(1)[0]
        scene = generate_scene(rng, width=width, height=height, n_things=n_things)
        image, file = _draw_in_look(scene, look, look_rng)
        return replace(scene, image=image, file=file)
    w, h = (width, height) if width and height else looks.image_size(rng, look, IMAGE_SIDE)
    w, h = width or w, height or h
    split = int(rng.uniform(0.3, 0.7) * h)
    wall_tint, floor_tint = _stuff_tints(rng)
    image = np.empty((h, w, 3), np.uint8)
    image[:split] = _texture(rng, split, w, wall_tint)
    image[split:] = _texture(rng, h - split, w, floor_tint)

    drafts = _place_things(rng, h, w, n_things or int(rng.integers(1, MAX_THINGS + 1)))
    for d in drafts:
        image[d.visible] = COLOURS[d.colour]
    covered = union((d.visible for d in drafts), (h, w))
    rows = np.arange(h)[:, None] < split
    stuff = {"wall": rows & ~covered, "floor": ~rows & ~covered}
    stuff = {name: m for name, m in stuff.items() if m.any()}
    return Scene(image, [_thing(i, d) for i, d in enumerate(drafts, 1)], stuff)


# The looks that keep a scene's geometry: `redraw_scene` can draw any plain scene in them.
SAME_PIXEL_LOOKS = tuple(look for look in looks.LOOKS if look not in ("size", "aspect"))


def redraw_scene(scene: Scene, look: str, rng: np.random.Generator) -> np.ndarray:
    """The plain `scene`'s image drawn in `look` (one of SAME_PIXEL_LOOKS): the same things at the same
    pixels, with the wall and floor repainted (``tones``, ``texture``), the rims drawn (``outline``) or
    the image-wide effect applied, so that a model can be shown one scene drawn two ways."""
    if look not in SAME_PIXEL_LOOKS:
        raise ValueError(f"{look!r} changes the scene's geometry; redraw only in {', '.join(SAME_PIXEL_LOOKS)}")
    return _draw_in_look(scene, look, rng)[0]


def _draw_in_look(scene: Scene, look: str, rng: np.random.Generator) -> tuple[np.ndarray, bytes | None]:
    """`redraw_scene`'s image, with the file it was decoded from where the look compresses it."""
    image = scene.image.copy()
    h, w = image.shape[:2]
    if look in ("tones", "texture"):
        tints = _stuff_tints(rng, looks.wide_tint if look == "tones" else None)
        texture = looks.strong_texture if look == "texture" else _texture
        for mask, tint in zip(scene.stuff.values(), tints):  # wall, then floor
            image[mask] = texture(rng, h, w, tint)[mask]
    elif look == "outline":
        looks.draw_outlines(image, [t.mask for t in scene.objects], [COLOURS[t.colour] for t in scene.objects])
    if look == "jpeg":
        file = looks.jpeg_file(image, rng)
        return looks.decode(file), file
    return looks.finish(image, look, rng), None
