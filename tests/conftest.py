"""Shared test fixtures: the reference fixture model (tiny, random weights) and its scene image."""

from pathlib import Path

import pytest
from PIL import Image

# ../shared/fixtures/xsam-ref next to the repository: a tiny X-SAM in the official layout.
REF_MODEL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "xsam-ref"


@pytest.fixture(scope="session")
def ref_model() -> Path:
    """The fixture folder. Also pins torch to one thread: the tiny model gains nothing from more, and
    threads competing for shared cores make it up to 100× slower."""
    if not (REF_MODEL / "pytorch_model.bin").exists():
        pytest.skip(f"reference fixture missing: {REF_MODEL}")
    import torch

    torch.set_num_threads(1)
    return REF_MODEL


@pytest.fixture(scope="session")
def predictor(ref_model):
    """One Predictor on the reference fixture for the whole session (loading costs seconds)."""
    from xsam_core.predictor import Predictor

    return Predictor.load(str(ref_model), device="cpu")


@pytest.fixture(scope="session")
def scene(ref_model) -> Image.Image:
    """The fixture's 96×72 shapes scene (red box, blue ball, grass, sky), RGB."""
    return Image.open(ref_model / "cases" / "gcgseg" / "image.png").convert("RGB")
