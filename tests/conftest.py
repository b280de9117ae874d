"""Shared test fixtures: the reference fixture model (tiny, random weights) and its scene image."""

import os
from pathlib import Path

import pytest
from PIL import Image

# A tiny X-SAM in the official layout, with reference outputs of the official code (tests/data/README.md).
REF_MODEL = Path(__file__).resolve().parent / "data" / "xsam-ref"
# Where the shared predictor (and the bitsandbytes tests) run: cpu, or XSAM_TEST_DEVICE=cuda on a GPU machine
# (scripts/gpu_check.sh). Everything else stays on the CPU.
TEST_DEVICE = os.environ.get("XSAM_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def ref_model() -> Path:
    """The fixture folder; a checkout without it fails (it is part of the repository, never skipped).
    Also pins torch to one thread: the tiny model gains nothing from more, and threads competing for
    shared cores make it up to 100× slower."""
    if not (REF_MODEL / "pytorch_model.bin").exists():
        pytest.fail(f"reference fixture missing: {REF_MODEL} (committed in tests/data: is the checkout complete?)")
    import torch

    torch.set_num_threads(1)
    return REF_MODEL


@pytest.fixture(scope="session")
def test_device() -> str:
    return TEST_DEVICE


@pytest.fixture(scope="session")
def predictor(ref_model):
    """One Predictor on the reference fixture for the whole session (loading costs seconds)."""
    from xsam_core.inference.predictor import Predictor

    return Predictor.load(str(ref_model), device=TEST_DEVICE)


@pytest.fixture(scope="session")
def scene(ref_model) -> Image.Image:
    """The fixture's 96×72 shapes scene (red box, blue ball, grass, sky), RGB."""
    return Image.open(ref_model / "cases" / "gcgseg" / "image.png").convert("RGB")


class Forced:
    """The reference model (random weights) answering with the official training answers (teacher
    forcing, as the official evaluation does), so every segmentation request reaches the mask decoder
    and the app has masks to show."""

    ANSWERS = {"gcgseg": "<p> a red circle </p> in front of <p> the wall </p>. And <SEG>.", "chat": None}

    def __init__(self, predictor):
        self.predictor = predictor

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def predict(self, image, task, *args, **kwargs):
        return self.predictor.predict(image, task, *args, force_answer=self.ANSWERS.get(task, "Sure, <SEG>."),
                                      **kwargs)


@pytest.fixture(scope="session")
def app_url(predictor):
    """The app launched in-process on the forced reference model, shared by API and browser tests."""
    from app import build_demo, launch_options

    demo = build_demo(Forced(predictor))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_options())
    yield url
    demo.close()
