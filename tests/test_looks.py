"""Scene looks change how a scene is drawn, never what it holds; chat sets ask contrasting questions."""

import json
from collections import Counter

import numpy as np
import pytest

from xsam_core import shapes as S

N = 25
EXACT_COLOURS = {"tones", "texture", "size", "aspect"}  # looks that paint things exactly in their colour


def scenes(look):
    return [S.generate_scene(np.random.default_rng([77, i]), look=look) for i in range(N)]


@pytest.mark.parametrize("look", S.LOOKS)
def test_content_follows_the_rules_in_every_look(look):
    for scene in scenes(look):
        h, w = scene.image.shape[:2]
        masks = [t.mask for t in scene.objects] + list(scene.stuff.values())
        assert (np.sum(masks, axis=0) == 1).all()  # things and stuff still tile the image
        above = np.zeros((h, w), bool)
        for t in reversed(scene.objects):
            amodal = S.draw_shape(t.shape, t.center, t.radius, t.angle, (h, w))
            assert (t.mask == (amodal & ~above)).all()
            assert t.area >= max(0.5 * t.full_area, S.MIN_PIXELS)
            above |= amodal
            low, high = S.SIZES[t.size]
            assert low <= 2 * t.radius / min(h, w) <= high
            pixels = scene.image[t.mask].astype(float)
            if look in EXACT_COLOURS:
                assert (pixels == S.COLOURS[t.colour]).all()
            elif look == "outline":  # its colour inside, a darker rim of it at the edge
                rim = np.round(np.array(S.COLOURS[t.colour]) * 0.55)
                inside = (pixels == S.COLOURS[t.colour]).all(-1)
                assert (inside | (pixels == rim).all(-1)).all() and 0 < inside.sum() < len(pixels)
            else:  # noise, blur and JPEG move pixels, but the thing still reads as its colour
                median = np.median(pixels, 0)
                nearest = min(S.COLOURS, key=lambda c: np.linalg.norm(median - S.COLOURS[c]))
                assert nearest == t.colour, (look, t.colour, median)


@pytest.mark.parametrize("look", [None, "tones", "texture", "size", "aspect", "outline"])
def test_wall_and_floor_stay_muted(look):
    """No wall or floor pixel is as colourful as a thing (channel spread 120 or more): a tint at the
    ends of the range once wrapped round in uint8 and painted saturated stripes that chat counted."""
    for i in range(80):
        scene = S.generate_scene(np.random.default_rng([78, i]), look=look)
        stuff = np.concatenate([scene.image[m] for m in scene.stuff.values()]).astype(int)
        assert np.ptp(stuff, axis=1).max() <= 70, (look, i)


def test_sizes_and_aspects():
    sides = [scene.image.shape[:2] for scene in scenes("size")]
    assert all(96 <= s <= 640 for hw in sides for s in hw)
    assert max(max(hw) for hw in sides) > 400 and min(min(hw) for hw in sides) < 128
    for scene in scenes("aspect"):
        h, w = scene.image.shape[:2]
        assert 1.9 <= max(h, w) / min(h, w) <= 3.6


def test_looks_differ_from_the_plain_renderer():
    plain = scenes(None)
    for look in ("tones", "texture", "noise", "blur", "jpeg", "outline"):
        changed = sum((a.image != b.image).any() for a, b in zip(plain, scenes(look))
                      if a.image.shape == b.image.shape)
        assert changed > 0, look
    wall_spread = [np.ptp(s.image[s.stuff["wall"]].mean(0)) for s in scenes("tones") if "wall" in s.stuff]
    assert max(wall_spread) > 40  # tones go beyond the plain renderer's muted tints (<= 40)
    with pytest.raises(ValueError, match="unknown look"):
        S.generate_scene(np.random.default_rng(0), look="sepia")


def test_random_look_share():
    rng = np.random.default_rng(0)
    drawn = Counter(S.random_look(rng, 0.5) for _ in range(2000))
    assert 900 < drawn[None] < 1100 and set(drawn) == {None, *S.LOOKS}
    weighted = Counter(S.random_look(rng, 1.0, {"aspect": 3.0}) for _ in range(2000))
    assert None not in weighted and 500 < weighted["aspect"] < 700  # 3 of 10 parts: 600 expected
    assert all(100 < weighted[look] < 300 for look in S.LOOKS if look != "aspect")


def test_chat_sets_contrast_their_answers():
    pairs = Counter()
    for i in range(200):
        rng = np.random.default_rng([5, i])
        scene = S.generate_scene(rng)
        questions = S.chat_set(scene, rng, 3)
        assert 1 <= len(questions) <= 3 and len({q["text"] for q in questions}) == len(questions)
        counts = Counter(t.shape for t in scene.objects)
        exists = {}
        for q in questions:
            text = q["text"]
            if text.startswith("Is there a "):
                exists[text] = q["answer"]
                assert q["answer"] == ("yes" if counts[text[11:-1]] else "no")
            elif text.startswith("What colour is the "):
                shape = text[19:-1]
                assert counts[shape] == 1
                assert q["answer"] == next(t.colour for t in scene.objects if t.shape == shape)
            else:
                assert q["answer"] == S.NUMBER_WORDS[len(scene.objects)]
        if len(exists) == 2:
            pairs["exists"] += 1
            assert sorted(exists.values()) == ["no", "yes"]  # one present, one absent shape
    assert pairs["exists"] > 60


def test_robustness_command_scores_every_look(tmp_path, capsys):
    from xsam_core.evaluation import robustness

    out = tmp_path / "r.json"
    assert robustness.main(["--n", "2", "--looks", "plain,blur", "--data", str(tmp_path), "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] == "look" and printed[1].split()[0] == "plain" and printed[2].split()[0] == "blur"
    assert printed[-1].startswith("chat questions (count/colour/exists): plain ")
    written = json.loads(out.read_text())
    scores, questions = written["scores"], written["chat_questions"]
    assert set(questions["blur"]) == {"count", "colour", "exists"}
    assert sum(questions["blur"].values()) > 0
    assert set(scores) == {"plain", "blur"}
    assert 0 <= scores["blur"]["refseg"] <= 1 and 0 <= scores["plain"]["chat"] <= 1
    info = lambda: json.loads((tmp_path / "blur" / "annotations.json").read_text())["info"]  # noqa: E731
    assert info()["look"] == "blur" and info()["chat_sets"] is True and written["chat_sets"] is True
    # a set written otherwise is not reused: one question a scene writes the folder anew
    assert robustness.main(["--n", "2", "--looks", "blur", "--data", str(tmp_path), "--one-question"]) == 0
    assert "chat_sets" not in info()


def test_robustness_scores_only_the_tasks_asked(tmp_path, capsys):
    from xsam_core.evaluation import robustness

    out = tmp_path / "r.json"
    args = ["--n", "2", "--looks", "plain,jpeg", "--data", str(tmp_path), "--json", str(out)]
    assert robustness.main([*args, "--tasks", "refseg,genseg/panoptic"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["look", "refseg", "PQ", "PQth"]
    assert [line.split()[0] for line in printed] == ["look", "plain", "jpeg", "diff"]  # no chat questions line
    written = json.loads(out.read_text())
    assert {look: set(row) for look, row in written["scores"].items()} == {"plain": {"refseg", "PQ", "PQth"},
                                                                         "jpeg": {"refseg", "PQ", "PQth"}}
    assert written["chat_questions"] == {}  # no chat asked, so no question counts


@pytest.mark.parametrize("look", S.SAME_PIXEL_LOOKS)
def test_a_redrawn_scene_keeps_its_things_where_they_were(look):
    """`redraw_scene` draws a plain scene in a look with the same things at the same pixels: the
    backdrop looks repaint only the wall and floor, the outline only rims inside things."""
    rng = np.random.default_rng(5)
    changed = 0
    for plain in scenes(None)[:8]:
        image = S.redraw_scene(plain, look, rng)
        assert image.shape == plain.image.shape and image.dtype == np.uint8
        things = np.any([t.mask for t in plain.objects], axis=0)
        diff = (image != plain.image).any(-1)
        changed += diff.any()
        if look in ("tones", "texture"):
            assert not (diff & things).any()
        elif look == "outline":
            assert not (diff & ~things).any()
            for t in plain.objects:  # a rim, darker, in the thing's own hue; the inside keeps its colour
                rim = t.mask & diff
                assert rim.any() and (image[rim] < plain.image[rim]).all(), t
                assert (t.mask & ~diff).any()
    assert changed == 8
    with pytest.raises(ValueError, match="geometry"):
        S.redraw_scene(plain, "size", rng)


@pytest.mark.parametrize("look", S.SAME_PIXEL_LOOKS)
def test_a_look_that_keeps_the_geometry_holds_the_plain_scene_and_its_requests(look):
    """A held-out look is scored against plain request for request: from the same rng, the scene in a
    look that keeps the geometry holds the plain scene's things, and the requests drawn after it are the
    plain scene's, while its pixels differ."""
    for i in range(6):
        plain_rng, look_rng = np.random.default_rng([91, i]), np.random.default_rng([91, i])
        plain, drawn = S.generate_scene(plain_rng), S.generate_scene(look_rng, look=look)
        assert [t.shape for t in drawn.objects] == [t.shape for t in plain.objects]
        assert all((a.mask == b.mask).all() for a, b in zip(drawn.objects, plain.objects))
        assert (drawn.image != plain.image).any()
        assert S.make_tasks(drawn, look_rng, 1) == S.make_tasks(plain, plain_rng, 1)
        assert (drawn.file is not None) == (look == "jpeg")
