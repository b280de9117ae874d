"""Visual prompts: points, boxes, scribbles and masks → one binary mask per named region.

The JSON format is documented in docs/prompts-json.md. Drawing follows the official visual-prompt
data pipeline: a point is a filled disk of radius 10 px, a box is filled, a scribble is its polyline
dilated by 5 px, a mask is used as is.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from ..errors import VisualPromptError
from ..masks import rle_to_mask

POINT_RADIUS = 10
SCRIBBLE_DILATION = 5
KINDS = ("point", "box", "scribble", "mask")


@dataclass
class Regions:
    names: list[str] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)  # bool [H, W] per region
    negative_points: list[tuple[int, int]] = field(default_factory=list)


def parse_prompts(prompts) -> list[dict]:
    """Accept a JSON string, a list of dicts, or None."""
    if prompts is None or prompts == "":
        return []
    if isinstance(prompts, str):
        try:
            prompts = json.loads(prompts)
        except json.JSONDecodeError as e:
            raise VisualPromptError(f"visual prompts are not valid JSON: {e}") from e
    if isinstance(prompts, dict):
        prompts = [prompts]
    if not isinstance(prompts, list) or not all(isinstance(p, dict) for p in prompts):
        raise VisualPromptError("visual prompts must be a JSON list of objects (see docs/prompts-json.md)")
    return prompts


def _xy(value, what: str) -> tuple[float, float]:
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError) as e:
        raise VisualPromptError(f"{what}: expected [x, y] numbers, got {value!r}") from e
    return x, y


def _inside(x: float, y: float, w: int, h: int, what: str) -> None:
    if not (0 <= x < w and 0 <= y < h):
        raise VisualPromptError(f"{what} at ({x:g}, {y:g}) is outside the {w}×{h} image")


def draw_item(item: dict, h: int, w: int) -> np.ndarray:
    """One stroke → bool mask [h, w]."""
    kind = item.get("kind")
    canvas = np.zeros((h, w), np.uint8)
    if kind == "point":
        x, y = _xy((item.get("x"), item.get("y")), "point")
        _inside(x, y, w, h, "point")
        cv2.circle(canvas, (int(round(x)), int(round(y))), POINT_RADIUS, 1, thickness=-1)
    elif kind == "box":
        box = item.get("box")
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise VisualPromptError(f"box: expected [x0, y0, x1, y1], got {box!r}")
        (x0, y0), (x1, y1) = _xy(box[:2], "box"), _xy(box[2:], "box")
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if x1 < 0 or y1 < 0 or x0 >= w or y0 >= h:
            raise VisualPromptError(f"box {box} is outside the {w}×{h} image")
        x0, y0, x1, y1 = (int(round(v)) for v in (max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)))
        canvas[y0:y1 + 1, x0:x1 + 1] = 1
    elif kind == "scribble":
        points = item.get("points") or []
        pts = [_xy(p, "scribble point") for p in points]
        if not pts:
            raise VisualPromptError("scribble: no points")
        if not any(0 <= x < w and 0 <= y < h for x, y in pts):
            raise VisualPromptError(f"scribble is entirely outside the {w}×{h} image")
        line = np.round(np.array(pts)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [line], isClosed=False, color=1, thickness=1)
        if len(pts) == 1:
            canvas[min(max(int(line[0, 0, 1]), 0), h - 1), min(max(int(line[0, 0, 0]), 0), w - 1)] = 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * SCRIBBLE_DILATION + 1,) * 2)
        canvas = cv2.dilate(canvas, kernel)
    elif kind == "mask":
        canvas = _mask_from_item(item, h, w)
    else:
        raise VisualPromptError(f"unknown prompt kind {kind!r}; expected one of {', '.join(KINDS)}")
    return canvas.astype(bool)


def _mask_from_item(item: dict, h: int, w: int) -> np.ndarray:
    if "rle" in item:
        rle = dict(item["rle"])
        if list(rle.get("size", [])) != [h, w]:
            raise VisualPromptError(f"mask size {rle.get('size')} does not match the image's [H, W] = [{h}, {w}]")
        try:
            return rle_to_mask(rle).astype(np.uint8)
        except Exception as e:  # pycocotools raises bare exceptions on corrupt counts
            raise VisualPromptError(f"mask: corrupt RLE ({e})") from e
    if "array" in item:
        arr = np.asarray(item["array"])
        if arr.shape != (h, w):
            raise VisualPromptError(f"mask shape {arr.shape} does not match the image ({h}, {w})")
        return (arr > 0).astype(np.uint8)
    if "png" in item:
        try:
            img = Image.open(io.BytesIO(base64.b64decode(item["png"], validate=True)))
            img.load()
        except (ValueError, OSError) as e:
            raise VisualPromptError(f"mask: the png is not a base64-encoded image ({e})") from e
        return mask_from_image(img, (w, h)).astype(np.uint8)
    raise VisualPromptError('mask: give "rle" ({"size": [H, W], "counts": ...}) or "png" (a base64 image)')


def mask_from_image(img: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
    """An uploaded mask image → bool mask: its alpha where it has transparency, else its bright pixels
    (> 127); resized (nearest) to `size` = (W, H) when given."""
    if img.mode in ("RGBA", "LA", "PA") and img.getchannel("A").getextrema()[0] < 255:
        gray = img.getchannel("A")
    else:
        gray = img.convert("L")
    if size is not None and gray.size != tuple(size):
        gray = gray.resize(tuple(size), Image.NEAREST)
    return np.asarray(gray) > 127


def region_name(item: dict) -> str:
    """The named region (visual prompt) an item adds to: its "prompt", "1" when it names none."""
    return str(item.get("prompt", "1"))


def build_regions(prompts, h: int, w: int) -> Regions:
    """Prompt JSON → one mask per region name (in order of first appearance) + negative points."""
    regions = Regions()
    by_name: dict[str, np.ndarray] = {}
    for item in parse_prompts(prompts):
        if item.get("kind") == "point" and item.get("negative"):
            x, y = _xy((item.get("x"), item.get("y")), "negative point")
            _inside(x, y, w, h, "negative point")
            regions.negative_points.append((int(x), int(y)))
            continue
        name = region_name(item)
        mask = draw_item(item, h, w)
        by_name[name] = by_name[name] | mask if name in by_name else mask
    for name, mask in by_name.items():
        if not mask.any():
            raise VisualPromptError(f"visual prompt {name!r} is empty")
        regions.names.append(name)
        regions.masks.append(mask)
    return regions

