"""The shipped embedded model on a small fixed held-out set of generated scenes (a seed never
used in training), through the same evaluation as `python -m xsam_core evaluate`.

Thresholds sit a little below what the shipped checkpoint measured on this set (see its model
card), so that a broken checkpoint, loader or post-processing fails here.
"""

import pytest

from xsam_core import shapes
from xsam_core.evaluation.evaluate import evaluate
from xsam_core.inference.predictor import EMBEDDED_MODEL, Predictor
from xsam_core.modeling.checkpoint import folder_size

HELDOUT_SEED = 2026  # training draws scenes from seed 0 (and evaluates during training on 1_000_003)
SCENES = 24
THRESHOLDS = {  # task: (metric, minimum); measured on this set: see the model card
    "refseg": ("miou", 0.65),  # 0.696
    "reaseg": ("miou", 0.60),  # 0.646
    "intseg": ("miou", 0.77),  # 0.812
    "vgdseg": ("miou", 0.67),  # 0.720
    "genseg/panoptic": ("pq", 0.62),  # 0.671
    "gcgseg": ("phrase_miou", 0.65),  # 0.695
    "chat": ("accuracy", 0.55),  # 0.625 (24 questions: one answer is 0.042)
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    shapes.write_dataset(root, SCENES, seed=HELDOUT_SEED)
    return evaluate(Predictor.load(None), root)


def test_checkpoint_fits_the_budget():
    assert folder_size(EMBEDDED_MODEL) <= 30 * 2**20
    assert (EMBEDDED_MODEL / "model.safetensors").exists() and (EMBEDDED_MODEL / "README.md").exists()


@pytest.mark.parametrize("task", THRESHOLDS)
def test_scores_on_heldout_scenes(results, task):
    metric, minimum = THRESHOLDS[task]
    assert results[task][metric] >= minimum, f"{task} {metric} {results[task][metric]:.3f} < {minimum}"
