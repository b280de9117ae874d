"""X-SAM inference core: model, checkpoints, tasks, predictor. No Gradio imports here.

One call for scripts and agents (X-SAM issue 15):

    import xsam_core
    pred = xsam_core.segment("assets/examples/shapes-2.png", "segment the large purple square")
    print(pred.info["ran_as"]["title"], pred.labels, pred.scores)   # Referring segmentation ['the large …'] […]
    mask = pred.masks[0]                                              # bool [H, W]; pred.to_json(): COCO RLE

Importing this package stays light: torch and the model load on the first `segment` call.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inference.predictor import Predictor
    from .inference.results import Prediction

_PREDICTORS: dict[str, Predictor] = {}  # one loaded predictor per model path or hub id
_LOADING = threading.Lock()


def load_predictor(model: str | Path | None = None, **load_options) -> Predictor:
    """The predictor of `model` (None: the embedded model; a folder, a weights file or a hub id),
    loaded on first use and kept: later calls with the same model get the same one."""
    key = _model_key(model)
    with _LOADING:
        if key not in _PREDICTORS:
            from .inference.predictor import Predictor

            _PREDICTORS[key] = Predictor.load(None if model is None else str(model), **load_options)
        return _PREDICTORS[key]


def segment(image, text: str = "", prompts=None, task: str = "auto", *, threshold: float = 0.5,
            model: str | Path | None = None, predictor: Predictor | None = None, **options) -> Prediction:
    """Text (and/or visual prompts) in, segmentation out.

    image: a path, a PIL image or an array. text: a phrase, a question, a class list or nothing.
    prompts: visual prompts (a list of dicts or their JSON, docs/prompts-json.md). task: "auto" (the
    rules of xsam_core/tasks/routing.py pick it; `pred.info["ran_as"]` says which and why) or a task
    name (`python -m xsam_core tasks`). `predictor=` uses a loaded Predictor; else `model=` (default:
    the embedded model) is loaded once and kept. `options`: seed, max_new_tokens, force_answer.
    Returns a `Prediction`: `.task`, `.text` (the answer), `.masks`, `.labels`, `.scores`, `.to_json()`.
    """
    predictor = predictor or load_predictor(model)
    return predictor.predict(image, task, text, prompts, threshold=threshold, **options)


def _model_key(model) -> str:
    if model is None:
        return "<embedded>"
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


__all__ = ["segment", "load_predictor"]
