"""A prediction and its exports: COCO RLE JSON, PNG masks, a zip of them."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..masks import box_xywh, mask_box, mask_to_rle
from ..tasks.common import Segment

# The Predictor's stages, in the order a request runs them (the keys of `Prediction.timings`).
STAGES = ("preprocess", "siglip", "sam", "pixel_decoder", "sampler", "prefill", "decode", "mask_decoder",
          "postprocess")


class StageTimings(dict):
    """Milliseconds per stage, and whom to tell as each stage starts: `on_stage(name)`, e.g. a page's
    progress bar while the released model spends minutes on a CPU."""

    def __init__(self, on_stage=None):
        super().__init__()
        self.on_stage = on_stage


@dataclass
class Prediction:
    task: str
    text: str  # the model's answer, cleaned as the official demo cleans it
    segments: list[Segment] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)  # grounded phrases (gcgseg) or the referring phrase
    image_size: tuple = (0, 0)  # (H, W)
    label_map: np.ndarray | None = None  # the official post-processed map, where the task has one
    mode: str | None = None  # genseg: panoptic / semantic / instance
    timings: dict = field(default_factory=dict)  # stage → milliseconds
    info: dict = field(default_factory=dict)  # model, device, dtype, cache hits, seed, notes
    regions: list = field(default_factory=list)  # visual-prompt masks as the model saw them (bool [H, W])
    region_names: list = field(default_factory=list)
    raw_text: str = ""  # the decoded answer with <p>, </p>, <SEG> (template end markers removed)
    rejected: list[Segment] = field(default_factory=list)  # official masks under the threshold: not shown

    @property
    def official_segments(self) -> list[Segment]:
        """What the official post-processing returns: the shown segments and the rejected ones."""
        return self.segments + self.rejected

    @property
    def masks(self) -> list[np.ndarray]:
        return [s.mask for s in self.segments]

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.segments]

    @property
    def scores(self) -> list[float]:
        return [s.score for s in self.segments]

    def pieces(self) -> list[tuple[str, int | None]]:
        """The answer for display: text pieces, each grounded phrase tagged with its index."""
        out: list[tuple[str, int | None]] = []
        for j, part in enumerate(re.split(r"<p>(.*?)</p>", self.raw_text)):
            part = _tidy(part.replace("<SEG>", "[SEG]"))
            if j % 2:
                out.append((part.strip(), j // 2))
            elif part.strip():
                out.append((part if out else part.lstrip(), None))
        return out

    def to_json(self) -> dict:
        """COCO-style result: one entry per mask with RLE, box, label, score, category index."""
        h, w = self.image_size
        return {
            "task": self.task,
            "mode": self.mode,
            "text": self.text,
            "phrases": self.phrases,
            "image": {"height": h, "width": w},
            "annotations": [_annotation(i, s) for i, s in enumerate(self.segments)],
            "rejected": [_annotation(i, s) for i, s in enumerate(self.rejected)],
            "timings_ms": {k: round(v, 2) for k, v in self.timings.items()},
            "info": self.info,
        }

    def masks_zip(self) -> bytes:
        """One 0/255 PNG per mask plus the JSON, in a zip."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for i, s in enumerate(self.segments):
                zf.writestr(f"mask_{i:03d}_{_slug(s.label)}.png", png_bytes(s.mask))
            zf.writestr("prediction.json", json.dumps(self.to_json(), indent=1))
        return buf.getvalue()


def _annotation(i: int, s: Segment) -> dict:
    return {"id": i, "label": s.label, "category_id": s.category_id, "isthing": s.isthing,
            "score": round(float(s.score), 6), "area": int(s.mask.sum()), "bbox": box_xywh(mask_box(s.mask)),
            "segmentation": mask_to_rle(s.mask)}


def _tidy(text: str) -> str:
    """Word-level decoding spaces punctuation out ("circle ." → "circle."); put it back."""
    text = re.sub(r"\s+", " ", text)
    return re.sub(r" ([.,;:?!])", r"\1", text)


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    return keep[:40] or "mask"


def png_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return buf.getvalue()
