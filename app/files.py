"""Where the app writes the files it serves (canvas drawings, overlays, downloads).

Every request gets its own folder with unique file names inside Gradio's upload folder, so Gradio
serves them as they are instead of copying them into its content-hashed cache: two requests with
byte-identical outputs never share (and rewrite) one cached file, the cause of the truncated-response
bug of concurrent identical outputs (docs/peers.md §4). Folders older than an hour are pruned.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from gradio.utils import get_upload_folder

MAX_AGE_S = 3600
_PRUNE_EVERY_S = 300
_last_prune = 0.0
_lock = threading.Lock()


def root() -> Path:
    return Path(get_upload_folder()) / f"xsam-app-{os.getpid()}"


def request_dir() -> Path:
    """A new, empty folder for one request's outputs."""
    _maybe_prune()
    path = root() / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


def _maybe_prune() -> None:
    global _last_prune
    now = time.time()
    with _lock:
        if now - _last_prune < _PRUNE_EVERY_S:
            return
        _last_prune = now
    if not root().exists():
        return
    for child in root().iterdir():
        try:
            if now - child.stat().st_mtime > MAX_AGE_S:
                shutil.rmtree(child, ignore_errors=True)
        except FileNotFoundError:
            pass
