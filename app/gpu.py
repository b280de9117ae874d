"""The one call into the model, wrapped by `spaces.GPU` on Hugging Face ZeroGPU and left as is elsewhere.

The wrapped function closes over the Predictor instead of taking it as an argument: ZeroGPU runs it in
a worker that receives the arguments pickled, and the model must not travel that way.
"""

from __future__ import annotations

import gc

try:  # present on Spaces; "effect-free in non-ZeroGPU environments"
    import spaces
except ImportError:
    spaces = None

GPU_SECONDS = 60  # ZeroGPU time slot per request: one image, one answer


def model_runner(predictor):
    """`run(image, task, text, prompts, threshold, seed, history, on_stage) -> Prediction`, serialised by the
    caller's queue; `on_stage(name)` hears each stage start (`Predictor.predict`)."""

    def run(image, task: str, text: str, prompts, threshold: float, seed: int | None, history=None, on_stage=None):
        try:
            return predictor.predict(image, task, text, prompts, threshold=threshold, seed=seed, history=history,
                                     on_stage=on_stage)
        except Exception as e:
            if "out of memory" in str(e).lower():
                predictor.cache.clear()  # drop cached encodings so the next request has room
                gc.collect()
            raise

    if spaces is None:
        return run
    on_gpu = spaces.GPU(duration=GPU_SECONDS)(run)

    def run_on_gpu(*args, on_stage=None, **kw):  # the call crosses to ZeroGPU's worker: a callback does not
        return on_gpu(*args, **kw)

    return run_on_gpu

