"""Shapes world: synthetic scenes and per-task requests with exact ground truth.

Scenes
------
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

Files (``python -m xsam_core shapes generate --out DIR --n N --seed S``)
-------------------------------------------------------------------
``DIR/images/000001.png`` ... and ``DIR/annotations.json``, a COCO-style dict:

* ``info``: ``{"generator": "xsam_core.shapes", "version": 1, "seed": S, "n": N}``;
* ``images``: ``[{"id", "file_name" (relative to DIR), "width", "height"}]``, ids from 1;
* ``categories``: ``[{"id", "name", "isthing", "supercategory"}]``, fixed: 1 circle, 2 square,
  3 triangle, 4 star, 5 ring, 6 cross (``isthing`` 1, ``"shape"``), 7 wall, 8 floor (``isthing`` 0,
  ``"stuff"``);
* ``annotations``: ``[{"id", "image_id", "category_id", "segmentation", "area", "bbox",
  "iscrowd"}]``, one per thing and one per stuff class present in the image; ``segmentation`` is
  a pycocotools RLE ``{"size": [H, W], "counts": str}`` of the visible mask, ``area`` its pixel
  count, ``bbox`` ``[x, y, w, h]`` in integer pixels, ``iscrowd`` 0; things also carry
  ``"colour"`` and ``"size"`` (the words above). Ids are global to the file, from 1;
* ``tasks``: the requests below, ``id`` from 1, annotation ids global to the file.

Item ``i`` (0-based) of a file is ``generate_scene(rng)`` then ``make_tasks(scene, rng)`` with
``rng = numpy.random.default_rng([seed, i])``, so the same seed gives byte-identical files.

Requests
--------
Each image gets one request per task (``genseg`` once per mode). Every request has ``id``,
``image_id``, ``task``, ``text`` (the user's text, ``""`` when none) and ``prompts`` (visual
prompts, ``[]`` when none, format in docs/prompts-json.md: points, ``[x0, y0, x1, y1]`` boxes,
scribble polylines or RLE masks, integer image pixels, optional region name ``"prompt"``).
Segmentation requests give the ground truth as ``targets``, a sorted list of annotation ids.

* ``chat``: ``text`` is a question, ``answer`` the exact expected answer: "How many shapes are
  there?" (``"one"`` .. ``"six"``), "What colour is the star?" (asked only when that shape is
  unique; a colour word), "Is there a ring?" (``"yes"`` / ``"no"``, balanced). No ``targets``.
* ``refseg``: ``text`` is a lower-case expression that picks exactly one thing: "the circle",
  "the red circle", "the small red circle" or "the green star left of the ring" (``left of``,
  ``right of``, ``above``, ``below``, compared by centroid).
* ``reaseg``: ``text`` is a sentence whose unique answer is one thing: "the shape with three
  corners" / "four corners" / "five points" / "a hole", "the round shape", "the shape that looks
  like a plus sign", "the largest shape" / "the smallest shape" (area margin >= 1.3x), "the
  leftmost shape" / rightmost / topmost / bottom-most (centroid margin). Skipped in the rare image
  where no sentence is unambiguous (likewise ``refseg``).
* ``genseg``: ``mode`` is ``panoptic``, ``semantic`` or ``instance``; ``text`` lists classes in the
  X-SAM syntax: ``"ins: circle, star; sem: wall, floor"`` (panoptic), ``"ins: circle, star"``
  (instance), ``"sem: wall, floor, circle, star"`` (semantic: shapes are classes too). Every class
  present is listed (absent ones may be); ``targets`` are the annotations of the listed classes.
* ``gcgseg``: ``text`` ""; ``caption`` such as "a small red circle and a large blue star in front of
  the wall, on the floor." (things left to right); ``caption_grounded``, the same with every
  phrase marked: "<p>a small red circle</p> and ... in front of <p>the wall</p>, on <p>the
  floor</p>."; ``phrases``: ``[{"text", "targets"}]`` in caption order; ``targets``: all of them.
* ``intseg``: ``prompts`` holds one point, box, scribble or mask on one thing; ``targets`` is it.
* ``vgdseg``: ``prompts`` holds one or two regions (``"prompt": "1"``, ``"2"``), each one prompt on
  things of different shapes; ``targets`` are all things sharing a prompted shape;
  ``targets_per_region`` lists, per region, the things with that region's shape.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..masks import box_corners, box_xywh, mask_box, mask_to_rle, rle_to_mask, union

GENERATOR = "xsam_core.shapes"
VERSION = 1

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
CATEGORIES = [
    {"id": i, "name": name, "isthing": int(name in SHAPES),
     "supercategory": "shape" if name in SHAPES else "stuff"}
    for i, name in enumerate(SHAPES + STUFF, 1)
]
CATEGORY_IDS = {c["name"]: c["id"] for c in CATEGORIES}
TASKS = ("chat", "refseg", "reaseg", "genseg", "gcgseg", "intseg", "vgdseg")
GENSEG_MODES = ("panoptic", "semantic", "instance")
PROMPT_KINDS = ("point", "box", "scribble", "mask")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")

IMAGE_SIDE = (128, 320)
MAX_THINGS = 6
MIN_VISIBLE_FRACTION = 0.5
MIN_PIXELS = 40
PLACEMENT_TRIES = 20
RING_HOLE = 0.5             # inner / outer radius
CROSS_MAX_TILT = math.radians(20)  # a cross stays a plus sign
RELATION_MARGIN = 0.08      # of min(H, W): how clearly a relation must hold
EXTREME_RATIO = 1.3         # "the largest shape" must beat the runner-up by this factor
DEEP_FRACTION = 0.4         # prompt points lie where distance to the edge >= this * max
ABSENT_CLASS_P = 0.3        # chance that genseg lists a given absent class

RELATIONS = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}
EXTREMES = {"leftmost": (0, 1), "rightmost": (0, -1), "topmost": (1, 1), "bottom-most": (1, -1)}
SHAPE_RIDDLES = {
    "triangle": "the shape with three corners",
    "square": "the shape with four corners",
    "star": "the shape with five points",
    "ring": "the shape with a hole",
    "circle": "the round shape",
    "cross": "the shape that looks like a plus sign",
}


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

def _pick(rng: np.random.Generator, items):
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
        shape, colour, size = _pick(rng, SHAPES), _pick(rng, list(COLOURS)), _pick(rng, list(SIZES))
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


def _stuff_tints(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Muted tints (channel spread <= 40, far from the saturated thing colours), >= 60 apart."""
    def tint():
        return np.round(rng.uniform(60, 200) + rng.uniform(-20, 20, 3))
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
    return (tint.astype(np.float32) + light[..., None]).astype(np.uint8)  # stays within 31..229


def generate_scene(rng: np.random.Generator, *, width: int | None = None, height: int | None = None,
                   n_things: int | None = None) -> Scene:
    """A random scene; same rng state gives the same scene. Sizes and thing count may be fixed."""
    w = width or int(rng.integers(IMAGE_SIDE[0], IMAGE_SIDE[1] + 1))
    h = height or int(rng.integers(IMAGE_SIDE[0], IMAGE_SIDE[1] + 1))
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


# ---------------------------------------------------------------- visual prompts

def _depth(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of each mask pixel to the nearest pixel outside the mask."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _deep_pixels(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of pixels well inside: depth >= DEEP_FRACTION of the maximum, and >= 2 px (so
    the 3 x 3 neighbourhood is inside) wherever the shape is thick enough for that."""
    top = depth.max()
    ys, xs = np.nonzero(depth >= max(DEEP_FRACTION * top, min(top, 2.0)))
    return xs, ys


def _scribble_points(depth: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
    """A 3-6 point random walk over deep pixels. Each step is shorter than the current point's
    depth minus one pixel, so the whole segment (rasterised) stays inside the mask."""
    xs, ys = _deep_pixels(depth)
    i = rng.integers(len(xs))
    points = [(xs[i], ys[i])]
    for _ in range(int(rng.integers(3, 7)) - 1):
        x, y = points[-1]
        reach = depth[y, x] - 1
        dist = np.hypot(xs - x, ys - y)
        near = np.flatnonzero((dist >= reach / 2) & (dist <= reach))
        if len(near):
            j = _pick(rng, near)
            points.append((xs[j], ys[j]))
        else:  # too thin to move: stay put (a degenerate but valid polyline)
            points.append((x, y))
    return [[int(x), int(y)] for x, y in points]


def visual_prompt(mask: np.ndarray, kind: str, rng: np.random.Generator) -> dict:
    """One prompt item (docs/prompts-json.md) of the given kind on a bool object mask."""
    if kind == "mask":
        return {"kind": "mask", "rle": mask_to_rle(mask)}
    if kind == "box":
        jitter = rng.integers(-2, 3, 4)
        box = np.array(box_corners(mask_box(mask))) + jitter
        box = np.clip(box, 0, [mask.shape[1] - 1, mask.shape[0] - 1] * 2)
        return {"kind": "box", "box": [int(v) for v in box]}
    depth = _depth(mask)
    if kind == "point":
        xs, ys = _deep_pixels(depth)
        i = rng.integers(len(xs))
        return {"kind": "point", "x": int(xs[i]), "y": int(ys[i])}
    if kind == "scribble":
        return {"kind": "scribble", "points": _scribble_points(depth, rng)}
    raise ValueError(f"unknown prompt kind {kind!r}")


# ---------------------------------------------------------------- task requests

def _request(task: str, text: str = "", prompts: list | None = None, **truth) -> dict:
    return {"task": task, "text": text, "prompts": prompts or [], **truth}


def _pick_form(rng: np.random.Generator, forms: dict[str, list]):
    """A random item of a random non-empty form, so rare forms are not drowned by common ones."""
    available = [items for items in forms.values() if items]
    return _pick(rng, _pick(rng, available)) if available else None


def _words(thing: Thing) -> tuple[str, str, str]:
    return thing.size, thing.colour, thing.shape


def _matching(scene: Scene, words: tuple[str, ...]) -> list[Thing]:
    return [t for t in scene.objects if set(words) <= set(_words(t))]


def _chat(scene: Scene, rng: np.random.Generator) -> dict:
    counts = Counter(t.shape for t in scene.objects)
    unique = [s for s in SHAPES if counts[s] == 1]
    kind = _pick(rng, ["count", "exists"] + (["colour"] if unique else []))
    if kind == "count":
        return _request("chat", "How many shapes are there?",
                        answer=NUMBER_WORDS[len(scene.objects)])
    if kind == "colour":
        shape = _pick(rng, unique)
        colour = next(t.colour for t in scene.objects if t.shape == shape)
        return _request("chat", f"What colour is the {shape}?", answer=colour)
    absent = [s for s in SHAPES if not counts[s]]
    present = [s for s in SHAPES if counts[s]]
    yes = not absent or rng.random() < 0.5
    return _request("chat", f"Is there a {_pick(rng, present if yes else absent)}?",
                    answer="yes" if yes else "no")


def _holds(a: Thing, b: Thing, relation: str, margin: float) -> bool:
    axis, sign = RELATIONS[relation]
    return sign * (a.centroid[axis] - b.centroid[axis]) > margin


def _relation_expressions(scene: Scene) -> list[tuple[str, int]]:
    """'the <desc> <relation> the <ref>': the reference is unique by its words; of the things
    fitting <desc>, the target satisfies the relation by a margin and every other one fails it."""
    margin = RELATION_MARGIN * min(scene.image.shape[:2])
    out = []
    for ref in scene.objects:
        ref_names = [w for w in (_words(ref)[2:], _words(ref)[1:], _words(ref))
                     if _matching(scene, w) == [ref]]
        for target in scene.objects:
            for relation in RELATIONS:
                if target is ref or not _holds(target, ref, relation, margin):
                    continue
                for desc in (_words(target)[2:], _words(target)[1:]):
                    others = [t for t in _matching(scene, desc) if t not in (target, ref)]
                    if any(_holds(t, ref, relation, 0) for t in others):
                        continue
                    out += [(f"the {' '.join(desc)} {relation} the {' '.join(r)}", target.id)
                            for r in ref_names]
    return out


def _refseg(scene: Scene, rng: np.random.Generator) -> dict | None:
    forms: dict[str, list] = {"shape": [], "colour": [], "size": [], "relation": []}
    for t in scene.objects:
        for form, words in zip(("size", "colour", "shape"), (_words(t), _words(t)[1:], _words(t)[2:])):
            if _matching(scene, words) == [t]:
                forms[form].append((f"the {' '.join(words)}", t.id))
    forms["relation"] = _relation_expressions(scene)
    choice = _pick_form(rng, forms)
    return choice and _request("refseg", choice[0], targets=[choice[1]])


def _extreme(things: list[Thing], key, clear) -> Thing | None:
    """The thing with the highest key, if clear(best key, runner-up key) says it wins clearly."""
    if len(things) < 2:
        return None
    best, second = sorted(things, key=key, reverse=True)[:2]
    return best if clear(key(best), key(second)) else None


def _reaseg(scene: Scene, rng: np.random.Generator) -> dict | None:
    things = scene.objects
    counts = Counter(t.shape for t in things)
    # A ring is round too, so "the round shape" needs the circle to be the only round thing.
    riddles = [(SHAPE_RIDDLES[t.shape], t.id) for t in things
               if counts[t.shape] == 1 and not (t.shape == "circle" and counts["ring"])]
    by_ratio = lambda a, b: a >= EXTREME_RATIO * b  # noqa: E731
    areas = {"largest": lambda t: t.area, "smallest": lambda t: 1 / t.area}
    margin = RELATION_MARGIN * min(scene.image.shape[:2])
    by_margin = lambda a, b: a - b >= margin  # noqa: E731
    places = {word: (lambda t, axis=axis, sign=sign: -sign * t.centroid[axis])
              for word, (axis, sign) in EXTREMES.items()}
    forms = {
        "riddle": riddles,
        "size": [(f"the {word} shape", best.id) for word, key in areas.items()
                 if (best := _extreme(things, key, by_ratio))],
        "place": [(f"the {word} shape", best.id) for word, key in places.items()
                  if (best := _extreme(things, key, by_margin))],
    }
    choice = _pick_form(rng, forms)
    return choice and _request("reaseg", choice[0], targets=[choice[1]])


def _class_list(rng: np.random.Generator, present: list[str], pool: tuple[str, ...]) -> list[str]:
    """Every present class plus some absent ones from the pool, shuffled."""
    names = present + [c for c in pool if c not in present and rng.random() < ABSENT_CLASS_P]
    rng.shuffle(names)
    return names


def _genseg(scene: Scene, rng: np.random.Generator, mode: str) -> dict:
    shapes = sorted({t.shape for t in scene.objects}, key=SHAPES.index)
    stuff = list(scene.stuff)
    parts = []
    if mode in ("panoptic", "instance"):
        parts.append(("ins", _class_list(rng, shapes, SHAPES)))
    if mode == "panoptic":
        parts.append(("sem", _class_list(rng, stuff, STUFF)))
    if mode == "semantic":
        parts.append(("sem", _class_list(rng, stuff + shapes, STUFF + SHAPES)))
    listed = {c for _, names in parts for c in names}
    targets = [t.id for t in scene.objects if t.shape in listed]
    targets += [i for name, i in scene.stuff_ids.items() if name in listed]
    text = "; ".join(f"{key}: {', '.join(names)}" for key, names in parts)
    return {"task": "genseg", "mode": mode, "text": text, "prompts": [], "targets": targets}


def _gcgseg(scene: Scene) -> dict:
    """Caption as a list of (text, targets) pieces; pieces with targets are grounded phrases."""
    things = sorted(scene.objects, key=lambda t: t.centroid[0])
    pieces: list[tuple[str, list[int]]] = []
    for k, t in enumerate(things):
        if k:
            pieces.append((" and " if k == len(things) - 1 else ", ", []))
        pieces.append((f"a {t.size} {t.colour} {t.shape}", [t.id]))
    ids = scene.stuff_ids
    if "wall" in ids:
        pieces += [(" in front of ", []), ("the wall", [ids["wall"]])]
    if "floor" in ids:
        pieces += [(", on " if "wall" in ids else " on ", []), ("the floor", [ids["floor"]])]
    pieces.append((".", []))
    phrases = [{"text": text, "targets": targets} for text, targets in pieces if targets]
    return _request(
        "gcgseg",
        caption="".join(text for text, _ in pieces),
        caption_grounded="".join(f"<p>{text}</p>" if targets else text for text, targets in pieces),
        phrases=phrases,
        targets=sorted(i for p in phrases for i in p["targets"]),
    )


def _intseg(scene: Scene, rng: np.random.Generator) -> dict:
    thing = _pick(rng, scene.objects)
    prompt = visual_prompt(thing.mask, _pick(rng, PROMPT_KINDS), rng)
    return _request("intseg", prompts=[prompt], targets=[thing.id])


def _vgdseg(scene: Scene, rng: np.random.Generator) -> dict:
    shapes = sorted({t.shape for t in scene.objects}, key=SHAPES.index)
    chosen = [shapes[i] for i in rng.permutation(len(shapes))[:int(rng.integers(1, 3))]]
    prompts, per_region = [], []
    for region, shape in enumerate(chosen, 1):
        same = [t for t in scene.objects if t.shape == shape]
        prompt = visual_prompt(_pick(rng, same).mask, _pick(rng, PROMPT_KINDS), rng)
        prompts.append({**prompt, "prompt": str(region)})
        per_region.append([t.id for t in same])
    return _request("vgdseg", prompts=prompts, targets=sorted(sum(per_region, [])),
                    targets_per_region=per_region)


def make_tasks(scene: Scene, rng: np.random.Generator, image_id: int = 0) -> list[dict]:
    """One request per task (genseg once per mode) with ground truth; ``id`` counts from 0 and
    targets are scene-local ids (things 1..n, then ``scene.stuff_ids``)."""
    requests = [
        _chat(scene, rng),
        _refseg(scene, rng),
        _reaseg(scene, rng),
        *(_genseg(scene, rng, mode) for mode in GENSEG_MODES),
        _gcgseg(scene),
        _intseg(scene, rng),
        _vgdseg(scene, rng),
    ]
    return [{"id": i, "image_id": image_id, **r} for i, r in enumerate(r for r in requests if r)]


# ---------------------------------------------------------------- files

def scene_annotations(scene: Scene, image_id: int, first_id: int = 1) -> list[dict]:
    """COCO annotations of a scene; scene-local id k becomes ``first_id - 1 + k``."""
    segments = [(t.id, t.shape, t.mask, {"colour": t.colour, "size": t.size}) for t in scene.objects]
    segments += [(i, name, scene.stuff[name], {}) for name, i in scene.stuff_ids.items()]
    return [{"id": first_id - 1 + local, "image_id": image_id, "category_id": CATEGORY_IDS[name],
             "segmentation": mask_to_rle(mask), "area": int(mask.sum()), "bbox": box_xywh(mask_box(mask)),
             "iscrowd": 0, **extra}
            for local, name, mask, extra in segments]


def _globalise(request: dict, request_id: int, id_offset: int) -> dict:
    """Renumber a request and turn its scene-local annotation ids into file-global ones."""
    out = dict(request, id=request_id)
    shift = lambda ids: [id_offset + i for i in ids]  # noqa: E731
    if "targets" in out:
        out["targets"] = shift(out["targets"])
    if "targets_per_region" in out:
        out["targets_per_region"] = [shift(ids) for ids in out["targets_per_region"]]
    if "phrases" in out:
        out["phrases"] = [dict(p, targets=shift(p["targets"])) for p in out["phrases"]]
    return out


def write_dataset(out_dir: str | Path, n: int, seed: int) -> dict:
    """Write n scenes with their requests to out_dir (see the module docstring); returns the dict."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, tasks = [], [], []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        scene = generate_scene(rng)
        image_id = index + 1
        file_name = f"images/{image_id:06d}.png"
        cv2.imwrite(str(out / file_name), scene.image[..., ::-1])  # cv2 writes BGR
        h, w = scene.image.shape[:2]
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        offset = len(annotations)
        annotations += scene_annotations(scene, image_id, offset + 1)
        tasks += [_globalise(r, len(tasks) + k, offset)
                  for k, r in enumerate(make_tasks(scene, rng, image_id), 1)]
    coco = {"info": {"generator": GENERATOR, "version": VERSION, "seed": seed, "n": n},
            "images": images, "categories": CATEGORIES, "annotations": annotations, "tasks": tasks}
    (out / "annotations.json").write_text(json.dumps(coco))
    return coco


def load_dataset(root: str | Path) -> tuple[dict, list[dict]]:
    """The annotations.json dict of a shapes-world directory, and its task requests."""
    coco = json.loads((Path(root) / "annotations.json").read_text())
    return coco, coco["tasks"]


def load_image(root: str | Path, image: dict) -> np.ndarray:
    """RGB uint8 image of an ``images`` entry."""
    bgr = cv2.imread(str(Path(root) / image["file_name"]), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(Path(root) / image["file_name"])
    return np.ascontiguousarray(bgr[..., ::-1])


def annotation_mask(annotation: dict) -> np.ndarray:
    """Bool H x W mask of an annotation."""
    return rle_to_mask(annotation["segmentation"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xsam shapes", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a shapes-world dataset")
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--n", type=int, default=100, help="number of images")
    gen.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    coco = write_dataset(args.out, args.n, args.seed)
    print(f"wrote {len(coco['images'])} images, {len(coco['annotations'])} annotations, "
          f"{len(coco['tasks'])} requests to {args.out}")

