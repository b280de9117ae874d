"""The prompt canvas: one session's visual prompts (as prompts-JSON items) and their drawing.

No Gradio here: the handlers keep a `Canvas` in `gr.State` (one per browser session) and call these
methods. Items use original-image pixels (docs/prompts-json.md); the canvas is shown at a display
size (small scenes enlarged, large photos reduced), so clicks are divided by `scale`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xsam_core.inference.processing import load_image
from xsam_core.inference.visual_prompts import VisualPromptError, build_regions, draw_item, parse_prompts, region_name
from xsam_core.masks import box_corners, mask_box, mask_to_rle
from xsam_core.tasks.routing import spec

DISPLAY_MIN, DISPLAY_MAX = 512, 1024  # longest side of the displayed canvas
PROMPT_COLORS = ["#00c853", "#2979ff", "#ff9100", "#d500f9", "#00b8d4", "#ffd600", "#c51162", "#64dd17"]
NEGATIVE_COLOR = "#ff1744"
PREFIX = "xsam-canvas-"  # file names of drawn canvases: the app's own images, not new uploads
MODES = ("point", "negative", "box")


def display_scale(width: int, height: int) -> float:
    longest = max(width, height)
    return min(max(longest, DISPLAY_MIN), DISPLAY_MAX) / longest


@dataclass
class Canvas:
    image: str | None = None  # the original image file
    base: str | None = None  # its display-size copy, which prompts are drawn on
    size: tuple[int, int] = (0, 0)  # original (W, H)
    scale: float = 1.0  # display pixels per original pixel
    items: list[dict] = field(default_factory=list)
    names: list[str] = field(default_factory=lambda: ["1"])
    active: str = "1"
    corner: tuple[float, float] | None = None  # first corner of a box being drawn

    # --- image -----------------------------------------------------------------------------------

    def set_image(self, path: str, outdir: Path) -> None:
        """A new image: validated by the core (ImageError on bad input); prompts start over."""
        img = load_image(path)
        self.image, self.size = path, img.size
        self.scale = display_scale(*img.size)
        self._save_base(img, outdir)
        self.clear()

    def _save_base(self, img: Image.Image, outdir: Path) -> None:
        shown = img.resize((round(img.width * self.scale), round(img.height * self.scale)), Image.LANCZOS)
        self.base = str(outdir / f"{PREFIX}base-{uuid.uuid4().hex[:8]}.png")
        shown.save(self.base)

    # --- editing ---------------------------------------------------------------------------------

    def click(self, x: float, y: float, mode: str) -> str:
        """A click at display pixel (x, y). Returns what happened, for the user."""
        if self.image is None:
            raise VisualPromptError("upload or pick an image first")
        w, h = self.size
        ox = min(max(x / self.scale, 0), w - 1)
        oy = min(max(y / self.scale, 0), h - 1)
        if mode == "negative":
            self.corner = None
            self.items.append({"kind": "point", "x": round(ox), "y": round(oy), "negative": True})
            return "negative point added: masks covering it are rejected"
        if mode == "box":
            if self.corner is None:
                self.corner = (ox, oy)
                return "first corner set: click the opposite corner"
            (x0, y0), self.corner = self.corner, None
            box = [round(min(x0, ox)), round(min(y0, oy)), round(max(x0, ox)), round(max(y0, oy))]
            self.items.append({"kind": "box", "box": box, "prompt": self.active})
            return f"box added to prompt {self.active}"
        self.corner = None
        self.items.append({"kind": "point", "x": round(ox), "y": round(oy), "prompt": self.active})
        return f"point added to prompt {self.active}"

    def add_mask(self, mask: np.ndarray, as_box: bool = False) -> str:
        """A drawn or uploaded mask (any size; resized to the image) → a mask item, or its bounding box."""
        if self.image is None:
            raise VisualPromptError("upload or pick an image first")
        w, h = self.size
        if mask.shape != (h, w):
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 127
        if not mask.any():
            raise VisualPromptError("the mask is empty: draw or upload a non-empty region")
        if as_box:
            box = box_corners(mask_box(mask))
            self.items.append({"kind": "box", "box": box, "prompt": self.active})
            return f"box added to prompt {self.active}"
        self.items.append({"kind": "mask", "rle": mask_to_rle(mask), "prompt": self.active})
        return f"mask added to prompt {self.active}"

    def undo(self) -> None:
        if self.corner is not None:
            self.corner = None
        elif self.items:
            self.items.pop()

    def clear(self) -> None:
        self.items, self.names, self.active, self.corner = [], ["1"], "1", None

    def new_prompt(self) -> str:
        """Start another named prompt (VGD takes several) and make it the active one."""
        name = str(max(int(n) for n in self.names if n.isdigit()) + 1 if self.names else 1)
        self.names.append(name)
        self.active, self.corner = name, None
        return name

    def select(self, name: str) -> None:
        if name in self.names:
            self.active, self.corner = name, None

    def load_json(self, prompts: str | list) -> None:
        """Replace the prompts by a prompts JSON (text or parsed), validated against the image."""
        if self.image is None:
            raise VisualPromptError("upload or pick an image first")
        items = parse_prompts(prompts)
        w, h = self.size
        build_regions(items, h, w)  # raises VisualPromptError with the reason
        names = list(dict.fromkeys(region_name(i) for i in items if not i.get("negative")))
        self.items, self.names, self.corner = [dict(i) for i in items], names or ["1"], None
        self.active = self.names[0]

    # --- reading ---------------------------------------------------------------------------------

    def prompts(self, task: str) -> list[dict]:
        """What a task gets: a task of one visual prompt takes the active one (and the negative points),
        a task of several (and Auto, whose rules count the regions) all of them, the other tasks none
        (the core would drop them)."""
        reads = spec(task)
        if reads.regions[1] == 1:
            return [i for i in self.items if i.get("negative") or region_name(i) == self.active]
        return list(self.items) if reads.takes_prompts else []

    def to_json(self) -> str:
        return "[\n" + ",\n".join("  " + json.dumps(i) for i in self.items) + "\n]" if self.items else "[]"

    def summary(self) -> str:
        if self.image is None:
            return "No image yet."
        parts = []
        for name in self.names:
            kinds = [i["kind"] for i in self.items if not i.get("negative") and region_name(i) == name]
            what = ", ".join(f"{kinds.count(k)} {k}{'s' if kinds.count(k) > 1 else ''}"
                             for k in ("point", "box", "scribble", "mask") if k in kinds) or "empty"
            mark = " ◀ active" if name == self.active else ""
            parts.append(f"**Prompt {name}**: {what}{mark}")
        negatives = sum(1 for i in self.items if i.get("negative"))
        if negatives:
            parts.append(f"**negative points**: {negatives}")
        if self.corner is not None:
            parts.append("*box: click the second corner*")
        return " · ".join(parts)

    def color(self, item: dict) -> str:
        if item.get("negative"):
            return NEGATIVE_COLOR
        name = region_name(item)
        index = self.names.index(name) if name in self.names else 0
        return PROMPT_COLORS[index % len(PROMPT_COLORS)]

    # --- drawing ---------------------------------------------------------------------------------

    def draw(self, outdir: Path) -> str | None:
        """The display image with every prompt *item* drawn on it as the user placed it (a glyph per point
        and box, masks and scribbles rasterised by the core's `draw_item`, in its prompt's colour), saved
        under `outdir`; its path. A result's overlay draws the other view, the regions the model saw
        (`xsam_core.inference.render`)."""
        if self.base is None:
            return None
        if not Path(self.base).exists():  # pruned after an idle hour: redraw from the original
            self._save_base(load_image(self.image), outdir)
        img = Image.open(self.base).convert("RGBA")
        layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
        pen = ImageDraw.Draw(layer)
        r = max(5, round(min(img.size) / 60))
        font = ImageFont.load_default(size=max(12, 2 * r))
        w, h = self.size
        for item in self.items:
            color = self.color(item)
            kind = item["kind"]
            if kind in ("mask", "scribble"):
                mask = Image.fromarray(draw_item(item, h, w).astype(np.uint8) * 120).resize(img.size, Image.NEAREST)
                layer.paste(Image.new("RGBA", img.size, color), mask=mask)
                continue
            if kind == "box":
                x0, y0, x1, y1 = (v * self.scale for v in item["box"])
                pen.rectangle([x0, y0, x1, y1], outline=color, width=max(2, r // 2))
                pen.text((x0 + 3, y0 + 1), region_name(item), fill=color, font=font)
                continue
            x, y = item["x"] * self.scale, item["y"] * self.scale
            pen.ellipse([x - r - 2, y - r - 2, x + r + 2, y + r + 2], fill="white")
            pen.ellipse([x - r, y - r, x + r, y + r], fill=color)
            if item.get("negative"):
                d = r * 0.6
                pen.line([x - d, y - d, x + d, y + d], fill="white", width=max(2, r // 3))
                pen.line([x - d, y + d, x + d, y - d], fill="white", width=max(2, r // 3))
            else:
                pen.text((x + r + 3, y - r), region_name(item), fill=color, font=font,
                         stroke_width=2, stroke_fill="white")
        if self.corner is not None:
            x, y = self.corner[0] * self.scale, self.corner[1] * self.scale
            color = PROMPT_COLORS[self.names.index(self.active) % len(PROMPT_COLORS)]
            pen.line([x - 2 * r, y, x + 2 * r, y], fill=color, width=2)
            pen.line([x, y - 2 * r, x, y + 2 * r], fill=color, width=2)
            pen.rectangle([x - 3, y - 3, x + 3, y + 3], outline="white", fill=color)
        path = outdir / f"{PREFIX}{uuid.uuid4().hex[:8]}.png"
        Image.alpha_composite(img, layer).convert("RGB").save(path)
        return str(path)


def is_canvas_file(path: str | None) -> bool:
    return bool(path) and Path(path).name.startswith(PREFIX)
