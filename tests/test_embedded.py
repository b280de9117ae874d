"""The shipped embedded model on a small fixed held-out set of generated scenes (a seed never
used in training), through the same evaluation as `python -m xsam_core evaluate`.

Thresholds sit a little below what the shipped checkpoint measured on this set (see its model
card), so that a broken checkpoint, loader or post-processing fails here.
"""

import numpy as np
import pytest

from xsam_core import shapes
from xsam_core.evaluation.evaluate import evaluate
from xsam_core.inference.predictor import EMBEDDED_MODEL, Predictor
from xsam_core.modeling.checkpoint import folder_size

HELDOUT_SEED = 2026  # training draws scenes from seed 0 (and evaluates during training on 1_000_003)
SCENES = 24
THRESHOLDS = {  # task: (metric, minimum); measured on this set with edges snapped: see the model card
    "refseg": ("miou", 0.94),  # 0.958 (0.931 unsnapped; the checkpoint before run 63: 0.947)
    "reaseg": ("miou", 0.97),  # 1.000 (0.963)
    "intseg": ("miou", 0.97),  # 1.000 (0.970)
    "vgdseg": ("miou", 0.95),  # 0.966 (0.943)
    "genseg/panoptic": ("pq", 0.96),  # 0.976 (0.946; before run 63: 0.970)
    "gcgseg": ("phrase_miou", 0.96),  # 0.975 (0.953; before run 63: 0.962)
    "chat": ("accuracy", 0.95),  # 0.958 (24 questions: one wrong answer is 0.042)
}
# The same seed in the JPEG look, the scenes given as their JPEG files: the model fits their colour to
# their brightness (`chroma_fit`, analysis §47-48) and should hold within about 0.05 of the plain set.
# Since dataset version 3 (analysis §53) this set holds the plain set's things and requests, drawn as
# JPEG files at new qualities; the set before it (other requests) read in brackets.
JPEG_THRESHOLDS = {
    "refseg": ("miou", 0.91),  # 0.930 (0.950)
    "reaseg": ("miou", 0.91),  # 0.928 (0.937)
    "intseg": ("miou", 0.95),  # 0.961 (0.968)
    "vgdseg": ("miou", 0.93),  # 0.942 (0.959)
    "genseg/panoptic": ("pq", 0.93),  # 0.950 (0.943)
    "gcgseg": ("phrase_miou", 0.91),  # 0.923 (0.945)
    "chat": ("accuracy", 0.95),  # 0.958 (0.958)
}
CONTRAST_SCENES = 30  # 45 pairs
CONTRAST_DIFFER, CONTRAST_BOTH_RIGHT = 0.95, 0.95  # shipped checkpoint: 44 and 43 of 45 pairs


def heldout(tmp_path_factory, look: str | None = None) -> dict:
    root = tmp_path_factory.mktemp(f"heldout-{look or 'plain'}")
    shapes.write_dataset(root, SCENES, seed=HELDOUT_SEED, look=look)
    return evaluate(Predictor.load(None), root)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return heldout(tmp_path_factory)


@pytest.fixture(scope="module")
def jpeg_results(tmp_path_factory):
    return heldout(tmp_path_factory, "jpeg")


def test_checkpoint_fits_the_budget():
    assert folder_size(EMBEDDED_MODEL) <= 30 * 2**20
    assert (EMBEDDED_MODEL / "model.safetensors").exists() and (EMBEDDED_MODEL / "README.md").exists()


@pytest.mark.parametrize("task", THRESHOLDS)
def test_scores_on_heldout_scenes(results, task):
    metric, minimum = THRESHOLDS[task]
    assert results[task][metric] >= minimum, f"{task} {metric} {results[task][metric]:.3f} < {minimum}"


@pytest.mark.parametrize("task", JPEG_THRESHOLDS)
def test_scores_on_heldout_jpeg_files(jpeg_results, task):
    metric, minimum = JPEG_THRESHOLDS[task]
    assert jpeg_results[task][metric] >= minimum, f"JPEG {task} {metric} {jpeg_results[task][metric]:.3f} < {minimum}"


def contrast_pairs(n_scenes: int, seed: int):
    """(scene, [(question, truth), (question, truth)]) pairs of one chat set whose truths differ."""
    for i in range(n_scenes):
        rng = np.random.default_rng([seed, i])
        scene = shapes.generate_scene(rng)
        by_kind = {}
        for q in shapes.chat_set(scene, rng, 5):
            by_kind.setdefault(shapes.chat_kind(q["text"]), []).append((q["text"], q["answer"]))
        for pair in by_kind.values():
            if len(pair) == 2 and pair[0][1] != pair[1][1]:
                yield scene, pair


def test_different_questions_on_one_image_get_different_answers():
    """On one image, "Is there a <present shape>?" against "<absent shape>", and "What colour is the
    <shape>?" for two shapes of different colours: a model that ignores the object named answers both
    alike. Measured on these scenes: shipped checkpoint (run 63, whose LLM is run 58's) 44 of 45 pairs answered
    differently, 43 both right (the checkpoint before it: 45 and 44; run 31: 43 and 43; run 30: 43 and 43; runs
    27 + 28 averaged: 45 and 45; run 28: 44 and 44; run 27: 45 and 45; run 26: 44 and 44; run 24: 43 and 43; run
    18: 45 and 43; run 17: 44 and 42; run 16 and run 15: 43 and 41; run 13: 41 and 39; run 12: 42 and 40; run
    10: 41 and 38; run 9: 39 and 35; run 8: 28 and 20; run 4: 6 and 5; run 1: 0 of 45)."""
    pred = Predictor.load(None)
    differ = right = total = 0
    for scene, pair in contrast_pairs(CONTRAST_SCENES, HELDOUT_SEED):
        answers = [pred.predict(scene.image, "chat", q).text.strip().rstrip(".").lower() for q, _ in pair]
        differ += answers[0] != answers[1]
        right += all(a == truth for a, (_, truth) in zip(answers, pair))
        total += 1
    assert total >= 30
    assert differ / total >= CONTRAST_DIFFER, f"different answers in {differ}/{total} pairs"
    assert right / total >= CONTRAST_BOTH_RIGHT, f"both right in {right}/{total} pairs"
