"""Shapes world: masks match the pixels, requests have correct and unique ground truth."""

import json
from collections import Counter

import cv2
import numpy as np
import pytest

from xsam_core import shapes as S
from xsam_core.masks import mask_to_rle, rle_to_mask

N_SCENES = 300
# Independent re-statement of the relation words: (axis of the centroid, sign of the difference).
RELATION_TESTS = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}
VOCABULARY = set(S.SHAPES) | set(S.COLOURS) | set(S.SIZES)


@pytest.fixture(scope="module")
def items():
    out = []
    for i in range(N_SCENES):
        rng = np.random.default_rng([123, i])
        scene = S.generate_scene(rng)
        out.append((scene, S.make_tasks(scene, rng)))
    return out


def by_id(scene):
    return {t.id: t for t in scene.objects}


def requests(items, task):
    return [(scene, r) for scene, tasks in items for r in tasks if r["task"] == task]


# ---------------------------------------------------------------- scenes

def test_scene_layout(items):
    counts = Counter()
    for scene, _ in items:
        h, w, c = scene.image.shape
        assert scene.image.dtype == np.uint8 and c == 3
        assert 128 <= h <= 320 and 128 <= w <= 320
        assert 1 <= len(scene.objects) <= 6
        assert [t.id for t in scene.objects] == list(range(1, len(scene.objects) + 1))
        assert list(scene.stuff) == ["wall", "floor"]
        wall_rows = np.flatnonzero(scene.stuff["wall"].any(1))
        floor_rows = np.flatnonzero(scene.stuff["floor"].any(1))
        assert wall_rows.max() < floor_rows.min()
        assert 0.3 * h - 1 <= floor_rows.min() <= 0.7 * h + 1
        for t in scene.objects:
            low, high = S.SIZES[t.size]
            assert low <= 2 * t.radius / min(h, w) <= high
        counts.update(len(scene.objects) for _ in [0])
    assert set(counts) == set(range(1, 7))  # every thing count occurs


def test_masks_are_the_painted_pixels(items):
    for scene, _ in items:
        image = scene.image
        masks = [t.mask for t in scene.objects] + list(scene.stuff.values())
        assert (np.sum(masks, axis=0) == 1).all()  # disjoint and covering: no holes
        for colour, rgb in S.COLOURS.items():
            painted = (image == rgb).all(-1)
            expected = np.zeros(image.shape[:2], bool)
            for t in scene.objects:
                if t.colour == colour:
                    expected |= t.mask
            assert (painted == expected).all(), colour
        # Stuff stays muted, so it can never be mistaken for a thing colour.
        stuff = scene.stuff["wall"] | scene.stuff["floor"]
        spread = image.max(-1).astype(int) - image.min(-1)
        assert spread[stuff].max() <= 40


def test_wall_and_floor_look_different(items):
    for scene, _ in items:
        wall, floor = (scene.image[m].mean(0) for m in scene.stuff.values())
        assert np.linalg.norm(wall - floor) > 40


def test_visible_masks_are_shapes_minus_occluders(items):
    occluded = 0
    for scene, _ in items:
        h, w = scene.image.shape[:2]
        above = np.zeros((h, w), bool)
        for t in reversed(scene.objects):  # top first
            amodal = S.draw_shape(t.shape, t.center, t.radius, t.angle, (h, w))
            assert t.full_area == amodal.sum()
            assert (t.mask == (amodal & ~above)).all()
            assert t.area == t.mask.sum() >= max(0.5 * t.full_area, S.MIN_PIXELS)
            occluded += t.area < t.full_area
            above |= amodal
        for a in scene.objects:  # same colours never touch (they would look like one blob)
            halo = cv2.dilate(a.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            assert not any((halo & b.mask).any() for b in scene.objects
                           if b is not a and b.colour == a.colour)
    assert occluded > 20  # occlusion actually happens


def test_thing_statistics(items):
    for scene, _ in items:
        for t in scene.objects:
            ys, xs = np.nonzero(t.mask)
            assert t.bbox == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert t.centroid == pytest.approx((xs.mean(), ys.mean()))


def test_same_seed_same_scene():
    a = S.generate_scene(np.random.default_rng(5))
    b = S.generate_scene(np.random.default_rng(5))
    c = S.generate_scene(np.random.default_rng(6))
    assert (a.image == b.image).all() and [t.shape for t in a.objects] == [t.shape for t in b.objects]
    assert a.image.shape != c.image.shape or (a.image != c.image).any()


def test_fixed_options():
    scene = S.generate_scene(np.random.default_rng(0), width=200, height=150, n_things=3)
    assert scene.image.shape == (150, 200, 3) and 1 <= len(scene.objects) <= 3


# ---------------------------------------------------------------- requests

def test_every_task_every_image(items):
    for _, tasks in items:
        names = Counter(r["task"] for r in tasks)
        assert all(names[t] == 1 for t in ("chat", "gcgseg", "intseg", "vgdseg"))
        assert sorted(r["mode"] for r in tasks if r["task"] == "genseg") == sorted(S.GENSEG_MODES)
        for r in tasks:
            assert isinstance(r["text"], str) and isinstance(r["prompts"], list)
        json.dumps(tasks)  # plain JSON types only
    for task in ("refseg", "reaseg"):  # skipped only when nothing is unambiguous
        assert len(requests(items, task)) >= 0.97 * N_SCENES


def test_chat_answers(items):
    answers = Counter()
    for scene, r in requests(items, "chat"):
        shapes = Counter(t.shape for t in scene.objects)
        q = r["text"]
        if q == "How many shapes are there?":
            assert r["answer"] == S.NUMBER_WORDS[len(scene.objects)]
            answers["count"] += 1
        elif q.startswith("What colour is the "):
            shape = q.removeprefix("What colour is the ").removesuffix("?")
            assert shapes[shape] == 1
            assert r["answer"] == next(t.colour for t in scene.objects if t.shape == shape)
            answers["colour"] += 1
        else:
            shape = q.removeprefix("Is there a ").removesuffix("?")
            assert shape in S.SHAPES
            assert r["answer"] == ("yes" if shapes[shape] else "no")
            answers[r["answer"]] += 1
    assert min(answers.values()) > 0.1 * N_SCENES / 3
    assert abs(answers["yes"] - answers["no"]) < 0.4 * (answers["yes"] + answers["no"])


def test_chat_forms_are_the_questions_the_world_asks(items):
    """Every chat question the world asks, alone or in a chat set, is one of `CHAT_FORMS`; questions
    of another form (the embedded model's answers to them are guesses, which the Predictor says) are not."""
    rng = np.random.default_rng(0)
    asked = {r["text"] for _, r in requests(items, "chat")}
    asked |= {r["text"] for scene, _ in items for r in S.chat_set(scene, rng, 5)}
    assert len(asked) > 10 and all(S.is_chat_form(q) for q in asked)
    assert S.is_chat_form("how many shapes are there") and S.is_chat_form("Is there a ring ?")
    for other in ["How many stars are there?", "What colour is the cat?", "Is there a ring? And a star?",
                  "What shape is the red thing?", ""]:
        assert not S.is_chat_form(other), other


def resolve_words(scene, text):
    words = text.split()
    assert set(words) <= VOCABULARY, text
    return [t for t in scene.objects if set(words) <= {t.size, t.colour, t.shape}]


def resolve_expression(scene, text):
    """All things an expression can mean, with plain (margin-free) centroid relations."""
    assert text.startswith("the ") and text == text.lower()
    body = text[4:]
    for relation, (axis, sign) in RELATION_TESTS.items():
        if f" {relation} the " in body:
            desc, ref_text = body.split(f" {relation} the ")
            refs = resolve_words(scene, ref_text)
            assert len(refs) == 1, text
            ref = refs[0]
            return [t for t in resolve_words(scene, desc)
                    if t is not ref and sign * (t.centroid[axis] - ref.centroid[axis]) > 0]
    return resolve_words(scene, body)


def test_refseg_expressions_are_unique_and_correct(items):
    relations = 0
    for scene, r in requests(items, "refseg"):
        assert r["prompts"] == [] and len(r["targets"]) == 1
        assert [t.id for t in resolve_expression(scene, r["text"])] == r["targets"], r["text"]
        relations += any(f" {rel} " in r["text"] for rel in RELATION_TESTS)
    assert relations > 0.1 * N_SCENES


def resolve_reasoning(scene, text):
    things = scene.objects
    riddles = {v: k for k, v in S.SHAPE_RIDDLES.items()}
    if text == "the round shape":
        return [t for t in things if t.shape in ("circle", "ring")]
    if text in riddles:
        return [t for t in things if t.shape == riddles[text]]
    word = text.removeprefix("the ").removesuffix(" shape")
    key = {"largest": lambda t: -t.area, "smallest": lambda t: t.area,
           "leftmost": lambda t: t.centroid[0], "rightmost": lambda t: -t.centroid[0],
           "topmost": lambda t: t.centroid[1], "bottom-most": lambda t: -t.centroid[1]}[word]
    ranked = sorted(things, key=key)
    assert len(ranked) >= 2 and key(ranked[0]) < key(ranked[1])
    if word in ("largest", "smallest"):  # by a clear margin
        small, big = sorted([ranked[0].area, ranked[1].area])
        assert big >= 1.3 * small
    return ranked[:1]


def test_reaseg_sentences_are_unique_and_correct(items):
    sentences = Counter()
    for scene, r in requests(items, "reaseg"):
        assert len(r["targets"]) == 1
        assert [t.id for t in resolve_reasoning(scene, r["text"])] == r["targets"], r["text"]
        sentences[r["text"]] += 1
    assert len(sentences) >= 10  # the sentence kinds all get used
    largest = [(scene, r) for scene, r in requests(items, "reaseg") if r["text"] == "the largest shape"]
    assert largest
    for scene, r in largest:
        assert by_id(scene)[r["targets"][0]].area == max(t.area for t in scene.objects)


def parse_genseg(text):
    parts = {}
    for part in text.split("; "):
        key, names = part.split(": ")
        parts[key] = names.split(", ")
    return parts


def test_genseg_lists_and_targets(items):
    for scene, r in requests(items, "genseg"):
        parts = parse_genseg(r["text"])
        expected_keys = {"panoptic": ["ins", "sem"], "instance": ["ins"], "semantic": ["sem"]}
        assert list(parts) == expected_keys[r["mode"]]
        present = {t.shape for t in scene.objects}
        if "ins" in parts:
            assert present <= set(parts["ins"]) <= set(S.SHAPES)
        if r["mode"] == "panoptic":
            assert set(parts["sem"]) == set(S.STUFF)
        if r["mode"] == "semantic":
            assert present | set(S.STUFF) <= set(parts["sem"]) <= set(S.SHAPES + S.STUFF)
        listed = {name for names in parts.values() for name in names}
        assert len(listed) == sum(map(len, parts.values()))  # no class listed twice
        expected = [t.id for t in scene.objects if t.shape in listed] + \
                   [i for name, i in scene.stuff_ids.items() if name in listed]
        assert r["targets"] == expected
    # Absent classes show up sometimes, so the model must learn to return nothing for them.
    assert any(len(parse_genseg(r["text"])["ins"]) > len({t.shape for t in scene.objects})
               for scene, r in requests(items, "genseg") if r["mode"] == "instance")


def test_gcgseg_caption(items):
    for scene, r in requests(items, "gcgseg"):
        grounded = r["caption_grounded"]
        assert grounded.replace("<p>", "").replace("</p>", "") == r["caption"]
        marked = [chunk.split("</p>")[0] for chunk in grounded.split("<p>")[1:]]
        assert marked == [p["text"] for p in r["phrases"]]
        ids = [i for p in r["phrases"] for i in p["targets"]]
        assert sorted(ids) == r["targets"] == list(range(1, len(scene.objects) + 3))
        things = by_id(scene)
        for p in r["phrases"][:-2]:
            t = things[p["targets"][0]]
            assert p["text"] == f"a {t.size} {t.colour} {t.shape}"
        assert [p["text"] for p in r["phrases"][-2:]] == ["the wall", "the floor"]
        said = [things[p["targets"][0]] for p in r["phrases"][:-2]]
        order = [(t.size != "large", list(S.COLOURS).index(t.colour), S.SHAPES.index(t.shape)) for t in said]
        assert order == sorted(order)  # large first, then by colour in the palette's order, then shape
        assert r["caption"].endswith(" in front of the wall, on the floor.")


def prompt_fits(prompt, mask):
    """Does a prompt item describe this (visible) object mask?"""
    kind = prompt["kind"]
    if kind == "point":
        x, y = prompt["x"], prompt["y"]
        return bool(mask[y - 1:y + 2, x - 1:x + 2].all())  # inside, not on the edge
    if kind == "box":
        ys, xs = np.nonzero(mask)
        exact = np.array([xs.min(), ys.min(), xs.max(), ys.max()])
        h, w = mask.shape
        box = np.array(prompt["box"])
        return bool((np.abs(box - exact) <= 2).all() and (box >= 0).all()
                    and box[[0, 2]].max() < w and box[[1, 3]].max() < h)
    if kind == "scribble":
        points = np.array(prompt["points"], np.int32)
        drawn = np.zeros(mask.shape, np.uint8)
        cv2.polylines(drawn, [points], False, 1, 1, cv2.LINE_8)
        return 3 <= len(points) <= 6 and bool(mask[drawn > 0].all())
    assert kind == "mask"
    return bool((rle_to_mask(prompt["rle"]) == mask).all())


def test_intseg_prompts_lie_on_the_target(items):
    kinds = Counter()
    for scene, r in requests(items, "intseg"):
        (prompt,) = r["prompts"]
        target = by_id(scene)[r["targets"][0]]
        assert prompt_fits(prompt, target.mask), prompt
        if prompt["kind"] == "point":
            for other in scene.objects:
                assert other is target or not prompt_fits(prompt, other.mask)
        kinds[prompt["kind"]] += 1
    assert set(kinds) == set(S.PROMPT_KINDS)


def test_every_prompt_kind_on_every_object(items):
    """Many more prompts than the requests hold, to catch rare misses (rings, stars, crosses)."""
    rng = np.random.default_rng(0)
    moves = []
    for scene, _ in items:
        for t in scene.objects:
            for kind in S.PROMPT_KINDS:
                prompt = S.visual_prompt(t.mask, kind, rng)
                assert prompt_fits(prompt, t.mask), (t.shape, prompt)
                if kind == "scribble":
                    moves.append(len({tuple(p) for p in prompt["points"]}))
    assert np.mean(moves) > 2.5  # mostly real polylines, not a repeated point


def test_vgdseg_targets_share_the_prompted_shapes(items):
    two_regions = 0
    for scene, r in requests(items, "vgdseg"):
        regions = [p["prompt"] for p in r["prompts"]]
        assert regions == [str(i) for i in range(1, len(regions) + 1)] and len(regions) <= 2
        two_regions += len(regions) == 2
        shapes = []
        for prompt, ids in zip(r["prompts"], r["targets_per_region"]):
            prompted = [t for t in scene.objects if prompt_fits(prompt, t.mask)]
            assert prompted, prompt
            shape = prompted[0].shape
            shapes.append(shape)
            assert ids == [t.id for t in scene.objects if t.shape == shape]
        assert len(set(shapes)) == len(shapes)  # regions are on different shapes
        assert r["targets"] == sorted(t.id for t in scene.objects if t.shape in shapes)
    assert two_regions > 0.2 * N_SCENES


def test_training_vgdseg_prompts_a_repeated_shape_whenever_there_is_one():
    """for_training: every scene holding a shape twice gets a vgdseg request with a target beyond the
    prompted things (drawn evenly, as evaluation's requests are, about half of them do)."""
    alike = {False: 0, True: 0}
    repeats = 0
    for i in range(60):
        scene = S.generate_scene(np.random.default_rng([7, i]))
        shapes = [t.shape for t in scene.objects]
        repeats += len(set(shapes)) < len(shapes)
        for training in alike:
            tasks = S.make_tasks(scene, np.random.default_rng([8, i]), for_training=training)
            vgd = next(r for r in tasks if r["task"] == "vgdseg")
            assert vgd["targets"] == sorted(sum(vgd["targets_per_region"], []))
            alike[training] += len(vgd["targets"]) > len(vgd["prompts"])
    assert repeats >= 20 and alike[True] == repeats and alike[False] < 0.8 * repeats


def test_training_draws_reasoning_place_sentences_more_often():
    place = {False: 0, True: 0}
    words = tuple(S.EXTREMES)
    for i in range(300):
        scene = S.generate_scene(np.random.default_rng([9, i]))
        for training in place:
            tasks = S.make_tasks(scene, np.random.default_rng([10, i]), for_training=training)
            place[training] += any(r["task"] == "reaseg" and r["text"].split()[1] in words for r in tasks)
    assert place[True] > 1.3 * place[False] > 0, place  # weight 2 of 1 + 1 + 2: about 1.5x


# ---------------------------------------------------------------- files

def test_rle_round_trip():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) < 0.3
    rle = mask_to_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [37, 53]
    assert (rle_to_mask(json.loads(json.dumps(rle))) == mask).all()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    S.main(["generate", "--out", str(root), "--n", "12", "--seed", "3"])
    return root


def test_cli_summary(dataset, capsys):
    S.main(["generate", "--out", str(dataset / "again"), "--n", "2", "--seed", "3"])
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "2 images" in line


def test_same_seed_same_bytes(dataset, tmp_path):
    S.write_dataset(tmp_path / "b", 12, 3)
    assert (dataset / "annotations.json").read_bytes() == (tmp_path / "b/annotations.json").read_bytes()
    for image in sorted((dataset / "images").iterdir()):
        assert image.read_bytes() == (tmp_path / "b/images" / image.name).read_bytes()
    S.write_dataset(tmp_path / "c", 12, 4)
    assert (dataset / "annotations.json").read_bytes() != (tmp_path / "c/annotations.json").read_bytes()


def test_chat_sets_ask_each_scene_its_whole_set_and_change_nothing_else(dataset, tmp_path):
    """``chat_sets`` replaces each scene's one chat question by its chat set, from an rng stream of its
    own: the scenes, annotations and every other request stay those of the file without it."""
    coco, tasks = S.load_dataset(dataset)
    sets = S.write_dataset(tmp_path / "sets", 12, 3, chat_sets=True)
    assert sets["info"]["chat_sets"] is True and "chat_sets" not in coco["info"]
    assert sets["images"] == coco["images"] and sets["annotations"] == coco["annotations"]
    others = lambda ts: [{k: v for k, v in t.items() if k != "id"} for t in ts if t["task"] != "chat"]  # noqa: E731
    assert others(sets["tasks"]) == others(tasks)
    assert [t["id"] for t in sets["tasks"]] == list(range(1, len(sets["tasks"]) + 1))
    for image in coco["images"]:
        scene = S.generate_scene(np.random.default_rng([3, image["id"] - 1]))
        expected = S.chat_set(scene, np.random.default_rng([3, image["id"] - 1, S.CHAT_SET_STREAM]), S.CHAT_SET_SIZE)
        asked = [(t["text"], t["answer"]) for t in sets["tasks"]
                 if t["task"] == "chat" and t["image_id"] == image["id"]]
        assert asked == [(q["text"], q["answer"]) for q in expected]
    counts = [t for t in sets["tasks"] if t["text"] == "How many shapes are there?"]
    assert len(counts) == len(coco["images"])


def test_task_requests_give_each_request_its_image_and_annotations(dataset):
    coco, tasks = S.load_dataset(dataset)
    got = list(S.task_requests([dataset, dataset], "vgdseg"))
    assert [r for _, r, _ in got] == 2 * [t for t in tasks if t["task"] == "vgdseg"]
    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    for image, r, of_image in got:
        assert image.shape == (*sizes[r["image_id"]], 3) and image.dtype == np.uint8
        assert set(r["targets"]) <= set(of_image)
        assert all(a["image_id"] == r["image_id"] for a in of_image.values())


def test_file_matches_the_scenes(dataset):
    coco, tasks = S.load_dataset(dataset)
    assert coco["info"] == {"generator": "xsam_core.shapes", "version": 3, "seed": 3, "n": 12, "look": None}
    assert [(c["id"], c["name"], c["isthing"]) for c in coco["categories"]] == \
        [(1, "circle", 1), (2, "square", 1), (3, "triangle", 1), (4, "star", 1), (5, "ring", 1),
         (6, "cross", 1), (7, "wall", 0), (8, "floor", 0)]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    assert [t["id"] for t in tasks] == list(range(1, len(tasks) + 1))
    for index, image in enumerate(coco["images"]):
        scene = S.generate_scene(np.random.default_rng([3, index]))
        assert image["id"] == index + 1
        assert (S.dataset_image(dataset, image) == scene.image).all()
        assert (image["height"], image["width"]) == scene.image.shape[:2]
        mine = [a for a in anns if a["image_id"] == image["id"]]
        masks = [t.mask for t in scene.objects] + list(scene.stuff.values())
        assert len(mine) == len(masks)
        for ann, mask, thing in zip(mine, masks, scene.objects + [None, None]):
            decoded = S.annotation_mask(ann)
            assert (decoded == mask).all()
            assert ann["area"] == mask.sum() and ann["iscrowd"] == 0
            x, y, w, h = ann["bbox"]
            assert decoded[y:y + h, x:x + w].sum() == ann["area"]
            if thing:
                assert (names[ann["category_id"]], ann["colour"], ann["size"]) == \
                    (thing.shape, thing.colour, thing.size)
            else:
                assert "colour" not in ann and names[ann["category_id"]] in S.STUFF
        # Request targets point at this image's annotations.
        ids = {a["id"] for a in mine}
        for r in tasks:
            if r["image_id"] == image["id"]:
                refs = r.get("targets", []) + [i for p in r.get("phrases", []) for i in p["targets"]]
                refs += [i for region in r.get("targets_per_region", []) for i in region]
                assert set(refs) <= ids
    assert {r["image_id"] for r in tasks} == {i["id"] for i in coco["images"]}
