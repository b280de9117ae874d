"""Rendering of hand-built Predictions (no model needed)."""

import numpy as np
import pytest
from PIL import Image

from xsam_core.inference.render import PALETTE, legend, overlay, segment_colors
from xsam_core.inference.results import Prediction
from xsam_core.tasks.common import Segment

GRAY = 100


def gray_image(h: int, w: int) -> Image.Image:
    return Image.fromarray(np.full((h, w, 3), GRAY, np.uint8))


def box_mask(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], float)


def two_boxes(task="genseg", h=200, w=300, **kw) -> Prediction:
    """Segment 0 top-left, segment 1 in the middle-right; the bottom-left corner is free."""
    segs = [Segment(box_mask(h, w, 0, 60, 0, 80), "cat", 0.93, 0),
            Segment(box_mask(h, w, 50, 120, 150, 260), "dog", 0.71, 1)]
    return Prediction(task=task, text="", segments=segs, image_size=(h, w), **kw)


@pytest.mark.parametrize("h,w", [(8, 8), (72, 96), (200, 300), (301, 199)])
def test_output_size_matches_input(h, w):
    pred = Prediction(task="genseg", text="", image_size=(h, w),
                      segments=[Segment(box_mask(h, w, 0, h // 2, 0, w // 2), "a", 0.5, 0)])
    out = overlay(gray_image(h, w), pred)
    assert out.size == (w, h) and out.mode == "RGB"


def test_mask_pixels_move_to_colour_and_far_pixels_stay():
    pred = two_boxes()
    out = np.asarray(overlay(gray_image(200, 300), pred, alpha=0.5)).astype(float)
    color = rgb(segment_colors(pred)[0])
    # Inside segment 0, away from its outline and its centred label: the 50 % blend.
    np.testing.assert_allclose(out[10, 10], 0.5 * color + 0.5 * GRAY, atol=2)
    assert (out[190, 10] == GRAY).all() and (out[190, 290] == GRAY).all()


def test_highlight_strengthens_one_segment_and_dims_the_others():
    pred = two_boxes()
    normal = np.asarray(overlay(gray_image(200, 300), pred)).astype(float)
    high = np.asarray(overlay(gray_image(200, 300), pred, highlight=1)).astype(float)
    c0, c1 = rgb(segment_colors(pred)[0]), rgb(segment_colors(pred)[1])
    p0, p1 = (10, 10), (60, 160)  # inside segment 0 / segment 1, off outlines and labels
    assert np.abs(high[p1] - c1).sum() < np.abs(normal[p1] - c1).sum()
    assert np.abs(high[p0] - c0).sum() > np.abs(normal[p0] - c0).sum()


def test_colour_k_for_segment_k_except_phrase_tasks():
    pred = two_boxes()
    pred.segments[0].category_id, pred.segments[1].category_id = 5, 3
    assert segment_colors(pred) == [PALETTE.by_idx(0).as_hex(), PALETTE.by_idx(1).as_hex()]


@pytest.mark.parametrize("task", ["gcgseg", "refseg", "reaseg"])
def test_phrase_tasks_colour_by_phrase_index(task):
    pred = two_boxes(task)
    pred.segments[0].category_id, pred.segments[1].category_id = 2, 0
    colors = segment_colors(pred)
    assert colors == [PALETTE.by_idx(2).as_hex(), PALETTE.by_idx(0).as_hex()]
    out = np.asarray(overlay(gray_image(200, 300), pred)).astype(float)
    np.testing.assert_allclose(out[10, 10], 0.5 * rgb(colors[0]) + 0.5 * GRAY, atol=2)


def test_legend_in_segment_order():
    pred = two_boxes()
    assert legend(pred) == [
        {"label": "cat", "score": 0.93, "color": segment_colors(pred)[0], "area": 60 * 80},
        {"label": "dog", "score": 0.71, "color": segment_colors(pred)[1], "area": 70 * 110},
    ]


def test_no_segments_returns_the_image_with_prompts_drawn():
    h, w = 120, 160
    img = gray_image(h, w)
    assert np.array_equal(np.asarray(overlay(img, Prediction(task="chat", text="hi", image_size=(h, w)))),
                          np.asarray(img))
    pred = Prediction(task="intseg", text="", image_size=(h, w), regions=[box_mask(h, w, 40, 80, 40, 100)],
                      region_names=["1"], info={"negative_points": [(140, 20)]})
    out = np.asarray(overlay(img, pred))
    ring = out[40:80, 40]  # the region's left edge: light/dark dashes
    assert (ring == 255).all(-1).any() and (ring == 0).all(-1).any()
    r, g, b = out[20, 140].astype(int)
    assert r > 200 and g < 100 and b < 100  # the negative point's red ✕
    assert (out[110, 10] == GRAY).all()
    assert np.array_equal(np.asarray(overlay(img, pred, show_prompts=False)), np.asarray(img))


def test_empty_mask_and_semantic_segments():
    h, w = 64, 64
    left = box_mask(h, w, 0, h, 0, w // 2)
    pred = Prediction(task="genseg", text="", mode="semantic", image_size=(h, w), segments=[
        Segment(left, "sky", 0.61, 0, False), Segment(~left, "grass", 0.55, 1, False),
        Segment(np.zeros((h, w), bool), "void", 0.0, 2)])
    out = np.asarray(overlay(gray_image(h, w), pred))
    assert not (out == GRAY).all(-1).any()  # every pixel belongs to a class
    assert [e["area"] for e in legend(pred)] == [h * w // 2, h * w // 2, 0]
    for undrawable in (2, 7):  # the empty segment, no such segment: everything is drawn as without highlight
        assert np.array_equal(np.asarray(overlay(gray_image(h, w), pred, highlight=undrawable)), out)


def test_size_mismatch_is_refused():
    with pytest.raises(ValueError, match="300×200"):
        overlay(gray_image(50, 50), two_boxes())


def test_tiny_image_is_filled_without_a_label():
    pred = two_boxes(h=8, w=8)  # segment 0 covers all 8×8 pixels, segment 1 none
    out = np.asarray(overlay(gray_image(8, 8), pred, highlight=0)).astype(float)
    color = rgb(segment_colors(pred)[0])
    # every pixel is the highlighted fill or its outline (no label text: it would cover the image)
    assert (np.abs(out - color).sum(-1) < np.abs(GRAY - color).sum() / 2).all()


def test_large_image():
    """A 12-MP overlay is drawn right (how fast: bench.refusal_and_render_timings, not asserted here)."""
    h, w = 3000, 4000
    segments = [Segment(box_mask(h, w, 0, 1500, 0, 2000), "prompt A", 0.9, 0),
                Segment(box_mask(h, w, 1000, 2900, 1500, 3900), "prompt A", 0.8, 0)]
    pred = Prediction(task="vgdseg", text="", image_size=(h, w), segments=segments,
                      regions=[box_mask(h, w, 100, 400, 100, 600)], region_names=["A"])
    out = np.asarray(overlay(gray_image(h, w), pred)).astype(float)
    assert out.shape == (h, w, 3)
    c0, c1 = (rgb(c) for c in segment_colors(pred))
    np.testing.assert_allclose(out[1300, 300], 0.5 * c0 + 0.5 * GRAY, atol=2)  # segment 0 only
    np.testing.assert_allclose(out[2500, 3600], 0.5 * c1 + 0.5 * GRAY, atol=2)  # segment 1 only
    assert (out[2950, 100] == GRAY).all()  # outside everything
    ring = out[150:350, 100]  # the visual prompt's left edge: light/dark dashes
    assert (ring == 255).all(-1).any() and (ring == 0).all(-1).any()


def test_label_of_a_thin_mask_on_a_large_image_sits_on_the_mask():
    h, w = 1200, 1600
    pred = Prediction(task="genseg", text="", image_size=(h, w),
                      segments=[Segment(box_mask(h, w, 700, 701, 100, 1500), "wire", 0.5, 0)])
    out = np.asarray(overlay(gray_image(h, w), pred))
    label_rows = np.nonzero((out == rgb(segment_colors(pred)[0])).all(-1).any(1))[0]
    assert label_rows.min() > 650 and label_rows.max() < 750
