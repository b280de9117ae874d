"""Shapes-world requests: one request per task on a scene, with exact ground truth (and the visual prompts).

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
  leftmost shape" / rightmost / topmost / bottom-most (centroid margin; training draws these more
  often: ``make_tasks(for_training=True)``). Skipped in the rare image
  where no sentence is unambiguous (likewise ``refseg``).
* ``genseg``: ``mode`` is ``panoptic``, ``semantic`` or ``instance``; ``text`` lists classes in the
  X-SAM syntax: ``"ins: circle, star; sem: wall, floor"`` (panoptic), ``"ins: circle, star"``
  (instance), ``"sem: wall, floor, circle, star"`` (semantic: shapes are classes too). Every class
  present is listed (absent ones may be); ``targets`` are the annotations of the listed classes.
* ``gcgseg``: ``text`` ""; ``caption`` such as "a large blue star and a small red circle in front of
  the wall, on the floor." (things in ``caption_order``: large first, then by colour, then shape);
  ``caption_grounded``, the same with every phrase marked: "<p>a large blue star</p> and ... in
  front of <p>the wall</p>, on <p>the floor</p>."; ``phrases``: ``[{"text", "targets"}]`` in
  caption order; ``targets``: all of them.
* ``intseg``: ``prompts`` holds one point, box, scribble or mask on one thing; ``targets`` is it.
* ``vgdseg``: ``prompts`` holds one or two regions (``"prompt": "1"``, ``"2"``), each one prompt on
  things of different shapes; ``targets`` are all things sharing a prompted shape (training prompts a
  shape that repeats whenever one does: ``make_tasks(for_training=True)``);
  ``targets_per_region`` lists, per region, the things with that region's shape.
"""

from __future__ import annotations

import re
from collections import Counter

import cv2
import numpy as np

from ..masks import box_corners, mask_box, mask_to_rle
from .scenes import COLOURS, SHAPES, STUFF, Scene, Thing, pick

GENSEG_MODES = ("panoptic", "semantic", "instance")
PROMPT_KINDS = ("point", "box", "scribble", "mask")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")

RELATION_MARGIN = 0.08      # of min(H, W): how clearly a relation must hold
EXTREME_RATIO = 1.3         # "the largest shape" must beat the runner-up by this factor
DEEP_FRACTION = 0.4         # prompt points lie where distance to the edge >= this * max
ABSENT_CLASS_P = 0.3        # chance that genseg lists a given absent class
PLACE_WEIGHT = 2.0          # training: reaseg's place sentences against the riddles and sizes

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
            j = pick(rng, near)
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


def _pick_form(rng: np.random.Generator, forms: dict[str, list], weights: dict[str, float] | None = None):
    """A random item of a random non-empty form, so rare forms are not drowned by common ones; the
    forms equally likely, or as `weights` says (a form it leaves out weighs 1)."""
    available = [name for name, items in forms.items() if items]
    if not available:
        return None
    if weights is None:  # evaluation's draw, kept as it was so its datasets stay byte for byte
        return pick(rng, forms[pick(rng, available)])
    p = np.array([weights.get(name, 1.0) for name in available])
    return pick(rng, forms[available[rng.choice(len(available), p=p / p.sum())]])


def _words(thing: Thing) -> tuple[str, str, str]:
    return thing.size, thing.colour, thing.shape


def _matching(scene: Scene, words: tuple[str, ...]) -> list[Thing]:
    return [t for t in scene.objects if set(words) <= set(_words(t))]


def _chat(scene: Scene, rng: np.random.Generator) -> dict:
    counts = Counter(t.shape for t in scene.objects)
    unique = [s for s in SHAPES if counts[s] == 1]
    kind = pick(rng, ["count", "exists"] + (["colour"] if unique else []))
    if kind == "count":
        return _request("chat", "How many shapes are there?",
                        answer=NUMBER_WORDS[len(scene.objects)])
    if kind == "colour":
        shape = pick(rng, unique)
        colour = next(t.colour for t in scene.objects if t.shape == shape)
        return _request("chat", f"What colour is the {shape}?", answer=colour)
    absent = [s for s in SHAPES if not counts[s]]
    present = [s for s in SHAPES if counts[s]]
    yes = not absent or rng.random() < 0.5
    return _request("chat", f"Is there a {pick(rng, present if yes else absent)}?",
                    answer="yes" if yes else "no")


CHAT_KINDS = {"How many": "count", "What colour": "colour", "Is there": "exists"}
# Every question the chat world asks, so the only ones a model trained on it learnt to answer.
CHAT_FORMS = ("How many shapes are there?", "What colour is the <shape>?", "Is there a <shape>?")


def is_chat_form(question: str) -> bool:
    """Whether a question is one of `CHAT_FORMS` with a shape of the world for <shape> (case, spacing
    and the question mark aside)."""
    shape = "(?:" + "|".join(SHAPES) + ")"
    said = " ".join(question.replace("?", " ").split())
    return any(re.fullmatch(re.escape(form.rstrip("?")).replace("<shape>", shape), said, re.IGNORECASE)
               for form in CHAT_FORMS)


def chat_kind(question: str) -> str | None:
    """The kind of a shapes-world chat question (count, colour, exists), None for any other text."""
    return next((kind for start, kind in CHAT_KINDS.items() if question.startswith(start)), None)


def chat_set(scene: Scene, rng: np.random.Generator, n: int) -> list[dict]:
    """Up to n chat questions on one scene, alike in form but not in answer wherever the scene
    allows: "Is there" for a present and an absent shape, the colours of two unique shapes of
    different colours, and the count. Asked together, they can only all be answered by reading
    the object each one names (a question-blind answer fits one of a pair at best)."""
    counts = Counter(t.shape for t in scene.objects)
    colour_of = {t.shape: t.colour for t in scene.objects if counts[t.shape] == 1}
    present, absent = [s for s in SHAPES if counts[s]], [s for s in SHAPES if not counts[s]]
    groups = [[("How many shapes are there?", NUMBER_WORDS[len(scene.objects)])]]
    if present and absent:
        groups.append([(f"Is there a {pick(rng, present)}?", "yes"), (f"Is there a {pick(rng, absent)}?", "no")])
    unique = [s for s in SHAPES if s in colour_of]
    if unique:
        first = pick(rng, unique)
        others = [s for s in unique if colour_of[s] != colour_of[first]]
        groups.append([(f"What colour is the {s}?", colour_of[s]) for s in [first, *others[:1]]])
    order = rng.permutation(len(groups))
    questions = [q for i in order for q in groups[i]][:n]
    return [_request("chat", text, answer=answer) for text, answer in questions]


def shape_counts(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """"How many <shape> shapes are there?" for a shape the scene holds and for one whose count differs
    (a number word, "zero" for an absent shape): the pair can only both be answered by counting the
    shape each one names, not all of them (a hint for "How many shapes are there?", analysis §35)."""
    counts = Counter(t.shape for t in scene.objects)
    first = pick(rng, [s for s in SHAPES if counts[s]])
    others = [s for s in SHAPES if counts[s] != counts[first]]  # none when all six shapes are there once
    return [_request("chat", f"How many {s} shapes are there?", answer=NUMBER_WORDS[counts[s]])
            for s in [first, *([pick(rng, others)] if others else [])]]


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


def absent_refseg(scene: Scene, rng: np.random.Generator) -> dict:
    """A referring request for "the <colour> <shape>" that no object of the scene is, in the world's own
    words: no target (its right answer is "not there"). `absent` holds the (colour, shape) named."""
    present = {(t.colour, t.shape) for t in scene.objects}
    options = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    colour, shape = options[int(rng.integers(len(options)))]
    return _request("refseg", f"the {colour} {shape}", targets=[], absent=(colour, shape))


def _extreme(things: list[Thing], key, clear) -> Thing | None:
    """The thing with the highest key, if clear(best key, runner-up key) says it wins clearly."""
    if len(things) < 2:
        return None
    best, second = sorted(things, key=key, reverse=True)[:2]
    return best if clear(key(best), key(second)) else None


def _reaseg(scene: Scene, rng: np.random.Generator, form_weights: dict[str, float] | None = None) -> dict | None:
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
    choice = _pick_form(rng, forms, form_weights)
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


def caption_order(thing: Thing) -> tuple:
    """Where a thing comes in a caption: large things first, then by colour in the palette's order,
    then shape in SHAPES' order (then left to right): the order of a phrase's own words, "a {size}
    {colour} {shape}", so each word it says narrows the choice the order made. By colour first, the
    size word that opens a phrase had to commit to the next thing before its colour was said
    (docs/embedded-chat-analysis.md §7). The metrics match phrases in any order."""
    return (thing.size != "large", list(COLOURS).index(thing.colour), SHAPES.index(thing.shape),
            thing.centroid[0])


def _gcgseg(scene: Scene) -> dict:
    """Caption as a list of (text, targets) pieces; pieces with targets are grounded phrases."""
    things = sorted(scene.objects, key=caption_order)
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
    thing = pick(rng, scene.objects)
    prompt = visual_prompt(thing.mask, pick(rng, PROMPT_KINDS), rng)
    return _request("intseg", prompts=[prompt], targets=[thing.id])


def _vgdseg(scene: Scene, rng: np.random.Generator, alike_first: bool = False) -> dict:
    counts = Counter(t.shape for t in scene.objects)
    shapes = sorted(counts, key=SHAPES.index)
    chosen = [shapes[i] for i in rng.permutation(len(shapes))[:int(rng.integers(1, 3))]]
    repeated = [shape for shape in shapes if counts[shape] > 1]
    if alike_first and repeated and not any(counts[shape] > 1 for shape in chosen):
        chosen[0] = pick(rng, repeated)  # none of `chosen` repeats, so this adds no duplicate region
    prompts, per_region = [], []
    for region, shape in enumerate(chosen, 1):
        same = [t for t in scene.objects if t.shape == shape]
        prompt = visual_prompt(pick(rng, same).mask, pick(rng, PROMPT_KINDS), rng)
        prompts.append({**prompt, "prompt": str(region)})
        per_region.append([t.id for t in same])
    return _request("vgdseg", prompts=prompts, targets=sorted(sum(per_region, [])),
                    targets_per_region=per_region)


def make_tasks(scene: Scene, rng: np.random.Generator, image_id: int = 0, for_training: bool = False) -> list[dict]:
    """One request per task (genseg once per mode) with ground truth; ``id`` counts from 0 and
    targets are scene-local ids (things 1..n, then ``scene.stuff_ids``).

    ``for_training`` asks more often for what the even draw of evaluation's requests leaves rare and
    the model got wrong (docs/embedded-chat-analysis.md §12-13): vgdseg prompts a shape the scene holds
    more than once whenever there is one (drawn evenly, 27 % of the requests had a target besides the
    prompted things, and the model learnt "this one" rather than "all like this one"), and reaseg draws
    its place sentences ("the leftmost shape") PLACE_WEIGHT times as often as the other forms."""
    requests = [
        _chat(scene, rng),
        _refseg(scene, rng),
        _reaseg(scene, rng, {"place": PLACE_WEIGHT} if for_training else None),
        *(_genseg(scene, rng, mode) for mode in GENSEG_MODES),
        _gcgseg(scene),
        _intseg(scene, rng),
        _vgdseg(scene, rng, alike_first=for_training),
    ]
    return [{"id": i, "image_id": image_id, **r} for i, r in enumerate(r for r in requests if r)]


def task_key(request: dict) -> str:
    """What evaluation scores and training weighs a request as: its task, and a genseg request's mode
    after a slash (``genseg/panoptic``), since every mode has its own metric and training weight."""
    return f"{request['task']}/{request['mode']}" if "mode" in request else request["task"]
