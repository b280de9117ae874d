"""Opt-in request logging (`--log-dir`): off by default, and announced in the page when on."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from pathlib import Path


class RequestLog:
    """One JSON line per request in `requests.jsonl`, with a copy of the input image beside it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, image: str, task: str, text: str, prompts, threshold: float, result: dict | None,
              error: str | None = None) -> None:
        rid = uuid.uuid4().hex[:12]
        copy = self.folder / "images" / f"{rid}{Path(image).suffix or '.png'}"
        shutil.copyfile(image, copy)
        record = {"id": rid, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "task": task, "text": text,
                  "prompts": prompts, "threshold": threshold, "image": str(copy.relative_to(self.folder)),
                  "error": error}
        if result is not None:
            record |= {"answer": result["text"], "labels": [a["label"] for a in result["annotations"]],
                       "scores": [a["score"] for a in result["annotations"]], "timings_ms": result["timings_ms"]}
        with self._lock, open(self.folder / "requests.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
