"""The model behind the app: what runs, how it is described, and the one request path UI and API share."""

from __future__ import annotations

import time

from xsam_core.inference.processing import ImageError
from xsam_core.inference.results import Prediction
from xsam_core.inference.visual_prompts import parse_prompts
from xsam_core.modeling import embedded

from .gpu import model_runner
from .request_log import RequestLog


class Service:
    def __init__(self, predictor, log_dir: str | None = None, runner=None):
        """`runner`: another `run(image, task, text, prompts, threshold, seed, history, on_stage) -> Prediction`
        (the Ray Serve deployment's, `xsam_core/serving/ray_serve.py`); default: the local predictor's."""
        self.info = predictor.describe()
        self.embedded = self.info["model"] == embedded.NAME
        self._run = runner or model_runner(predictor)
        self.log = RequestLog(log_dir) if log_dir else None

    def predict(self, image: str | None, task: str, text: str, prompts, threshold: float,
                seed: int | None = None, history=None, on_stage=None) -> tuple[Prediction, float]:
        """One request → (prediction, wall-clock ms); `on_stage(name)` hears each model stage start. Raises
        the core's user-facing errors."""
        if not image:
            raise ImageError("no image: upload one, paste one, take a webcam picture or pick an example")
        items = parse_prompts(prompts)  # the core's request rules decide what the task reads
        start = time.perf_counter()
        try:
            pred = self._run(image, task, text or "", items, float(threshold), seed, history, on_stage)
        except Exception as e:
            if self.log:
                self.log.write(image, task, text, items, threshold, None, error=str(e))
            raise
        total = (time.perf_counter() - start) * 1000
        if self.log:
            self.log.write(image, task, text, items, threshold, pred.to_json())
        return pred, total
