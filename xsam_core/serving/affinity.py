"""Which replica an image goes to: rendezvous (highest-random-weight) hashing of the image's content
hash over the replica ids. Pure Python, no Ray: the router in `ray_serve.py` and the tests share it.

Every replica scores `blake2b(key | replica_id)`; the highest score wins and the rest, in score order,
are the fallbacks. A replica joining or leaving moves only the images it wins or won, so the other
replicas' image caches keep paying.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def content_key(image) -> str:
    """The routing key of an image source: a hash of the file's bytes (a path) or of the bytes."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(image, (bytes, bytearray, memoryview)):
        h.update(image)
    else:
        with open(Path(image), "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def _score(key: str, replica_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}|{replica_id}".encode(), digest_size=8).digest(), "big")


def rank_replicas(key: str, replica_ids) -> list[str]:
    """`replica_ids` ordered by preference for `key`: the owner first, then the fallbacks."""
    return sorted(replica_ids, key=lambda rid: (_score(key, rid), rid), reverse=True)


def owner(key: str, replica_ids) -> str | None:
    """The replica that owns `key` (None when there are no replicas)."""
    ranked = rank_replicas(key, replica_ids)
    return ranked[0] if ranked else None
