"""Drawing a Prediction: filled, outlined and labelled masks, visual prompts, negative points.

Colours come from one fixed palette (supervision's default), so the same segment index always gets
the same colour in the overlay, the legend and the UI. Annotators work on a BGR uint8 array (the
OpenCV convention supervision uses for numpy scenes); the result is converted back to RGB once.
"""

from __future__ import annotations

import cv2
import numpy as np
import supervision as sv
from PIL import Image

from ..tasks import get_task
from .processing import load_image
from .results import Prediction

PALETTE = sv.ColorPalette.DEFAULT
PROMPT_LIGHT, PROMPT_DARK = sv.Color.WHITE, sv.Color.BLACK  # two-tone dashes: visible on any background
NEGATIVE_COLOR = sv.Color(255, 0, 0)
MIN_LABELLED_SIDE = 32  # below this a label would cover the whole image
DIM = 0.35  # opacity factor of the other segments when one is highlighted


def _color_indices(pred: Prediction) -> list[int]:
    if get_task(pred.task).phrase_masks:  # colour by phrase index: the text and the masks match
        return [s.category_id for s in pred.segments]
    return list(range(len(pred.segments)))


def segment_colors(pred: Prediction) -> list[str]:
    """One hex colour per segment: colour k for segment k (phrase index for phrase-grounded tasks)."""
    return [PALETTE.by_idx(i).as_hex() for i in _color_indices(pred)]


def legend(pred: Prediction) -> list[dict]:
    colors = segment_colors(pred)
    return [{"label": s.label, "score": float(s.score), "color": c, "area": int(np.count_nonzero(s.mask))}
            for s, c in zip(pred.segments, colors)]


def _contrast_palette() -> sv.ColorPalette:
    """Black text on light palette colours, white on dark ones (same indices as PALETTE)."""
    def text(c: sv.Color) -> sv.Color:
        return sv.Color.BLACK if 0.299 * c.r + 0.587 * c.g + 0.114 * c.b > 140 else sv.Color.WHITE
    return sv.ColorPalette([text(c) for c in PALETTE.colors])


TEXT_PALETTE = _contrast_palette()


def _text_scale(h: int, w: int) -> float:
    # supervision's scale is ~unreadable on small images; keep a floor.
    return max(sv.calculate_optimal_text_scale((w, h)), 0.3)


def _label_annotator(h: int, w: int, color, text_color, position: sv.Position) -> sv.LabelAnnotator:
    scale = _text_scale(h, w)
    return sv.LabelAnnotator(color=color, text_color=text_color, text_scale=scale,
                             text_thickness=max(1, round(scale * 1.5)), text_padding=max(2, round(scale * 8)),
                             text_position=position, smart_position=True)


def _inner_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel deepest inside the mask, found on a ≤256-px copy (supervision's centre of mass is
    slow on large images and falls outside non-convex masks)."""
    h, w = mask.shape
    step = max(1, max(h, w) // 256)
    small = mask.astype(np.uint8) * 255
    if step > 1:  # area averaging: a thin part still covers its small pixel
        small = cv2.resize(small, (-(-w // step), -(-h // step)), interpolation=cv2.INTER_AREA)
    dist = cv2.distanceTransform(np.pad(small > 0, 1).astype(np.uint8), cv2.DIST_L2, 3)  # border = outside
    y, x = np.unravel_index(int(dist.argmax()), dist.shape)
    sy, sx = h / small.shape[0], w / small.shape[1]
    return min(int((x - 0.5) * sx), w - 1), min(int((y - 0.5) * sy), h - 1)


def _label_detections(masks: list[np.ndarray], class_ids: list[int]) -> sv.Detections:
    """Point boxes at each mask's inner point, for a label centred there."""
    points = np.array([_inner_point(m) for m in masks], dtype=float).reshape(-1, 2)
    return sv.Detections(xyxy=np.hstack([points, points]), class_id=np.asarray(class_ids, dtype=int))


def _detections(masks: list[np.ndarray], class_ids: list[int]) -> sv.Detections:
    stack = np.stack(masks).astype(bool)
    return sv.Detections(xyxy=sv.mask_to_xyxy(stack), mask=stack, class_id=np.asarray(class_ids, dtype=int))


def _draw_segments(scene: np.ndarray, pred: Prediction, highlight: int | None, alpha: float,
                   show_labels: bool) -> np.ndarray:
    h, w = scene.shape[:2]
    colors = _color_indices(pred)
    # Empty masks have no box or outline: they stay in the legend but are not drawn.
    drawn = [k for k, s in enumerate(pred.segments) if s.mask.any()]
    thickness = sv.calculate_optimal_line_thickness((w, h))
    # (segments, fill opacity, outline thickness or 0 for none and no label)
    if highlight is not None and highlight in drawn:
        others = [k for k in drawn if k != highlight]
        layers = [(others, alpha * DIM, 0), ([highlight], min(1.0, alpha + 0.25), 2 * thickness)]
    else:
        layers = [(drawn, alpha, thickness)]
    for ks, opacity, outline in layers:
        if not ks:
            continue
        masks = [pred.segments[k].mask for k in ks]
        det = _detections(masks, [colors[k] for k in ks])
        lookup = det.class_id
        scene = sv.MaskAnnotator(color=PALETTE, opacity=opacity).annotate(scene, det, custom_color_lookup=lookup)
        if not outline:
            continue
        scene = sv.PolygonAnnotator(color=PALETTE, thickness=outline).annotate(scene, det, custom_color_lookup=lookup)
        if show_labels and min(h, w) >= MIN_LABELLED_SIDE:
            labels = [f"{pred.segments[k].label} {pred.segments[k].score:.2f}" for k in ks]
            annotator = _label_annotator(h, w, PALETTE, TEXT_PALETTE, sv.Position.CENTER)
            scene = annotator.annotate(scene, _label_detections(masks, det.class_id), labels=labels,
                                       custom_color_lookup=lookup)
    return scene


def _dashed_outline(scene: np.ndarray, mask: np.ndarray, thickness: int) -> None:
    """Outline `mask` in alternating light/dark dashes (in place), distinct from every palette colour."""
    ring = np.zeros(mask.shape, np.uint8)
    cv2.polylines(ring, sv.mask_to_polygons(mask), isClosed=True, color=1, thickness=thickness)
    ys, xs = np.nonzero(ring)
    dash = max(4, 3 * thickness)
    dark = ((xs + ys) // dash) % 2 == 1
    scene[ys[~dark], xs[~dark]] = PROMPT_LIGHT.as_bgr()
    scene[ys[dark], xs[dark]] = PROMPT_DARK.as_bgr()


def _draw_regions(scene: np.ndarray, pred: Prediction, show_labels: bool) -> np.ndarray:
    """The visual prompts as the model saw them: each region's mask (its items rasterised by
    `visual_prompts.draw_item` and merged) outlined in two-tone dashes and labelled, a ✕ at each negative
    point. The app's prompt canvas draws the other view, the items as placed (app/canvas.py)."""
    h, w = scene.shape[:2]
    thickness = sv.calculate_optimal_line_thickness((w, h))
    masks, names = [], []
    for name, mask in zip(pred.region_names, pred.regions):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape == (h, w) and mask.any():
            _dashed_outline(scene, mask, thickness)
            masks.append(mask)
            names.append(f"prompt {name}")
    if masks and show_labels and min(h, w) >= MIN_LABELLED_SIDE:
        annotator = _label_annotator(h, w, PROMPT_LIGHT, PROMPT_DARK, sv.Position.TOP_LEFT)
        scene = annotator.annotate(scene, _detections(masks, [0] * len(masks)), labels=names)
    for x, y in pred.info.get("negative_points") or []:
        _draw_cross(scene, int(x), int(y), thickness)
    return scene


def _draw_cross(scene: np.ndarray, x: int, y: int, thickness: int) -> None:
    """A red ✕ with a light halo at a negative point."""
    r = max(3, min(scene.shape[:2]) // 40)
    for color, t in ((PROMPT_LIGHT, thickness + 2), (NEGATIVE_COLOR, thickness)):
        cv2.line(scene, (x - r, y - r), (x + r, y + r), color.as_bgr(), t, cv2.LINE_AA)
        cv2.line(scene, (x - r, y + r), (x + r, y - r), color.as_bgr(), t, cv2.LINE_AA)


def overlay(image, pred: Prediction, highlight: int | None = None, alpha: float = 0.5,
            show_prompts: bool = True, show_labels: bool = True) -> Image.Image:
    """The RGB image with the prediction drawn on it (same size as the image).

    `highlight=k` draws segment k strongly and dims the others; an index with no drawable mask
    draws everything normally. `image` is anything `load_image` accepts (EXIF orientation applied,
    as the Predictor saw it)."""
    img = load_image(image)
    h, w = img.height, img.width
    if any(pred.image_size) and tuple(pred.image_size) != (h, w):
        raise ValueError(f"the prediction is for a {pred.image_size[1]}×{pred.image_size[0]} image, "
                         f"not this {w}×{h} one")
    scene = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)
    scene = _draw_segments(scene, pred, highlight, float(np.clip(alpha, 0.0, 1.0)), show_labels)
    if show_prompts:
        scene = _draw_regions(scene, pred, show_labels)
    return Image.fromarray(cv2.cvtColor(scene, cv2.COLOR_BGR2RGB))
