"""The image-affinity check of `app.py --replicas N`: every example image sent twice through the API →
the replica that answered (`info.replica`) and whether it hit its image cache (`info.image_cached`).

    python scripts/serving_check.py --url http://127.0.0.1:7895

Passes (exit 0) when each image is answered by one replica both times and the second time is cached.
Loopback servers only. A fresh copy of each image file (new bytes on disk, same content) is sent the
second time, so the hit comes from the content hash, not from the path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.examples import SHAPES  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    args = p.parse_args()
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("loopback servers only")
    from gradio_client import Client, handle_file

    client = Client(args.url, verbose=False)
    seen, ok = {}, True
    tmp = Path(tempfile.mkdtemp())
    for ex in SHAPES:
        if ex.path in seen:
            continue
        answers = []
        for k in range(2):
            path = ex.path if k == 0 else shutil.copy(ex.path, tmp / f"copy-{Path(ex.path).name}")
            _, _, result = client.predict(handle_file(str(path)), ex.text, json.dumps(ex.prompts), 0.5,
                                          api_name=f"/{ex.task}")
            info = result["info"]
            answers.append((info.get("replica"), info.get("image_cached")))
        seen[ex.path] = answers
        same = answers[0][0] == answers[1][0]
        hit = answers[1][1] is True
        ok &= same and hit
        print(f"{Path(ex.path).name}: 1st → replica {answers[0][0]} cached={answers[0][1]}; "
              f"2nd → replica {answers[1][0]} cached={answers[1][1]}  "
              f"{'OK' if same and hit else 'FAIL'}")
    owners = sorted({a[0][0] for a in seen.values()})
    print(f"{len(seen)} images over {len(owners)} replica(s): {owners}")
    print("PASS" if ok else "FAIL")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
