"""Examples: generated shapes-world scenes for the embedded model, public-domain photos for X-SAM.

Scenes come from `python -m xsam_core shapes generate --n 8 --seed 123` with prompts from their
annotations; photos are scikit-image's public-domain sample images. Nothing is computed at start-up:
picking an example loads it and runs it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .presets import PRESETS

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class Example:
    image: str  # relative to assets/
    task: str
    text: str = ""
    prompts: list = field(default_factory=list)

    @property
    def path(self) -> str:
        return str(ASSETS / self.image)


SHAPES = [
    Example("examples/shapes-2.png", "refseg", "the large purple square"),
    Example("examples/shapes-6.png", "genseg", "ins: star, ring, square, circle, cross; sem: wall, floor"),
    Example("examples/shapes-7.png", "gcgseg"),
    Example("examples/shapes-8.png", "intseg", prompts=[{"kind": "box", "box": [54, 50, 79, 76], "prompt": "1"}]),
    Example("examples/shapes-8.png", "vgdseg", prompts=[{"kind": "point", "x": 40, "y": 125, "prompt": "1"}]),
    Example("examples/shapes-6.png", "reaseg", "the shape that looks like a plus sign"),
    Example("examples/shapes-7.png", "chat", "How many shapes are there?"),
    Example("examples/shapes-7.png", "ovseg", "star, circle, square, triangle, wall, floor"),
]

PHOTOS = [
    Example("photos/astronaut.png", "refseg", "the woman in the space suit"),
    Example("photos/chelsea.png", "genseg", PRESETS["COCO panoptic (80 things + 53 stuff)"]),
    Example("photos/coffee.png", "gcgseg"),
    Example("photos/rocket.jpg", "reaseg", "What carries people into space?"),
    Example("photos/chelsea.png", "intseg", prompts=[{"kind": "point", "x": 200, "y": 150, "prompt": "1"}]),
    Example("photos/coffee.png", "chat", "What is on the plate next to the cup?"),
]
