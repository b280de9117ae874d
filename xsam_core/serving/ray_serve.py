"""A Ray Serve deployment of the Predictor: N replicas (one per GPU, or CPU replicas) behind one page.

    predictor, runner = start_replicas(2)              # ray.init locally, deploy, wait until ready
    build_demo(predictor, runner=runner)               # the same page; `runner` replaces the local call

Requests for the same image reach the same replica, so its image cache (`Prediction.info
["image_cached"]`) keeps paying: `ImageAffinityRouter`, a Ray Serve custom request router
(`ray.serve.request_router.RequestRouter`, Ray 2.45+), ranks the replicas for each request by
rendezvous hashing of the image's content hash (`affinity.rank_replicas`): the owner first, the
others after it, so a busy (queue full) or gone owner falls back to the least loaded of the rest.
Needs `pip install -r requirements-serve.txt`; nothing else in the project imports this module.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import ray
from ray import serve
from ray.serve.config import RequestRouterConfig
from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

from .affinity import content_key, rank_replicas

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "xsam"
KEY_ARG = "image_key"  # the keyword argument of `run` the router reads
MAX_ONGOING = 8  # requests a replica holds (one on the model, the rest waiting) before the router falls back
REQUEST_TIMEOUT_S = 300


class ImageAffinityRouter(RequestRouter):
    """Ranks: [[owner of the image's hash], [the other replicas]]. Ray Serve sends the request to the
    first rank with a replica whose queue is not full (least loaded within a rank). No FIFOMixin: it
    would hand a chosen replica to the oldest pending request, whatever its image."""

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        key = pending_request.kwargs.get(KEY_ARG) if pending_request is not None else None
        if not key or len(candidate_replicas) < 2:
            return [candidate_replicas]
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        ranked = [by_id[rid] for rid in rank_replicas(key, by_id)]
        return [ranked[:1], ranked[1:]]


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING,
    request_router_config=RequestRouterConfig(request_router_class=ImageAffinityRouter),
)
class PredictorDeployment:
    """One Predictor per replica. Ray runs the requests in a thread pool; the Predictor's own lock runs
    one at a time on the model (as under the page's concurrency in one process)."""

    def __init__(self, load_kwargs: dict):
        from xsam_core.inference.predictor import Predictor

        self.predictor = Predictor.load(**load_kwargs)
        self.replica = serve.get_replica_context().replica_id.unique_id

    def describe(self) -> dict:
        return dict(self.predictor.describe(), replica=self.replica)

    def run(self, image: bytes, task: str, text: str, prompts, threshold: float, seed: int | None,
            history=None, image_key: str | None = None):
        """→ ("ok", Prediction) or ("error", the core's exception), so the page shows the core's message
        and not Ray's wrapped traceback. `image_key` is for the router only."""
        try:
            pred = self.predictor.predict(image, task, text, prompts, threshold=threshold, seed=seed,
                                          history=history)
        except Exception as e:
            if "out of memory" in str(e).lower():
                self.predictor.cache.clear()
            return "error", e
        pred.info["replica"] = self.replica
        return "ok", pred


class RemotePredictor:
    """What the page asks a Predictor for (`describe`), answered by the deployment."""

    def __init__(self, handle, replicas: int):
        self.handle, self.replicas = handle, replicas
        self._info = handle.describe.remote().result(timeout_s=REQUEST_TIMEOUT_S)

    def describe(self) -> dict:
        info = {k: v for k, v in self._info.items() if k != "replica"}
        info["device"] = f"{info['device']} × {self.replicas} Ray Serve replicas"
        return info


def deployment_runner(handle):
    """`run(image, task, text, prompts, threshold, seed, history, on_stage) -> Prediction` through the
    deployment, like `app.gpu.model_runner`: the image travels as its file's bytes (replicas may be on other
    nodes), with its content hash for the router. `on_stage` is not called: stages run in the replica."""

    def run(image, task: str, text: str, prompts, threshold: float, seed: int | None, history=None, on_stage=None):
        data = bytes(image) if isinstance(image, (bytes, bytearray)) else Path(image).read_bytes()
        status, value = handle.run.remote(data, task, text, prompts, threshold, seed, history,
                                          **{KEY_ARG: content_key(data)}).result(timeout_s=REQUEST_TIMEOUT_S)
        if status == "error":
            raise value
        return value

    return run


def start_replicas(replicas: int, gpus_per_replica: float = 0, cpus_per_replica: float = 1,
                   **load_kwargs):
    """Start Ray on this machine, deploy `replicas` Predictors, wait until they are up →
    (RemotePredictor, runner). `gpus_per_replica` 1: one replica per GPU; 0: CPU replicas."""
    if not ray.is_initialized():
        cpus = max(int(replicas * cpus_per_replica + 0.999), os.cpu_count() or 1)
        # the replicas import xsam_core from this checkout; no working-dir upload
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    serve.start(proxy_location="Disabled")  # handles only: the page is the HTTP front
    options = {"num_cpus": cpus_per_replica}
    if gpus_per_replica:
        options["num_gpus"] = gpus_per_replica
    app = PredictorDeployment.options(num_replicas=replicas, ray_actor_options=options).bind(load_kwargs)
    handle = serve.run(app, name=APP_NAME, route_prefix=None)
    log.info("Ray Serve: %d replicas of the Predictor (%s per replica)", replicas, options)
    return RemotePredictor(handle, replicas), deployment_runner(handle)


def shutdown() -> None:
    try:
        serve.shutdown()
    finally:
        ray.shutdown()
