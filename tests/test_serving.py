"""The replica-routing rule of `app.py --replicas N` (xsam_core/serving/affinity.py): pure, no Ray."""

from collections import Counter

from xsam_core.serving.affinity import content_key, owner, rank_replicas

REPLICAS = ["a1b2c3d4", "e5f6g7h8", "i9j0k1l2", "m3n4o5p6"]
KEYS = [content_key(f"image {i}".encode()) for i in range(2000)]


def test_content_key_is_the_bytes_not_the_path(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"same pixels")
    b.write_bytes(b"same pixels")
    assert content_key(a) == content_key(str(b)) == content_key(b"same pixels")
    assert content_key(b"other pixels") != content_key(a)


def test_owner_is_stable_and_order_free():
    for key in KEYS[:50]:
        assert owner(key, REPLICAS) == owner(key, list(reversed(REPLICAS))) == owner(key, set(REPLICAS))
        ranked = rank_replicas(key, REPLICAS)
        assert sorted(ranked) == sorted(REPLICAS) and ranked[0] == owner(key, REPLICAS)
    assert owner(KEYS[0], []) is None


def test_keys_spread_over_replicas():
    counts = Counter(owner(k, REPLICAS) for k in KEYS)
    assert set(counts) == set(REPLICAS)
    assert max(counts.values()) < 1.25 * len(KEYS) / len(REPLICAS)


def test_a_leaving_replica_moves_only_its_own_images():
    gone = REPLICAS[1]
    rest = [r for r in REPLICAS if r != gone]
    for key in KEYS:
        before = rank_replicas(key, REPLICAS)
        after = owner(key, rest)
        # images of the other replicas stay; the gone replica's go to their next choice (the fallback)
        assert after == (before[0] if before[0] != gone else before[1])


def test_a_joining_replica_takes_only_a_share():
    grown = REPLICAS + ["q7r8s9t0"]
    moved = sum(owner(k, REPLICAS) != owner(k, grown) for k in KEYS)
    assert all(owner(k, grown) in (owner(k, REPLICAS), "q7r8s9t0") for k in KEYS)
    assert moved < 1.5 * len(KEYS) / len(grown)
