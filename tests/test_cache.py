"""The per-image cache is bounded by bytes and drops the least recently used image first."""

from xsam_core.inference.cache import ByteLRU


class Entry:
    def __init__(self, n):
        self.n = n

    def nbytes(self):
        return self.n


def test_least_recently_used_goes_first():
    cache = ByteLRU(budget=250)
    cache.put("a", Entry(100))
    cache.put("b", Entry(100))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", Entry(100))  # 300 > 250: the oldest (b) goes
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None


def test_an_entry_larger_than_the_budget_is_kept_alone():
    cache = ByteLRU(budget=50)
    cache.put("a", Entry(10))
    cache.put("big", Entry(100))
    assert len(cache) == 1 and cache.get("big") is not None


def test_growing_entries_are_accounted_for():
    cache = ByteLRU(budget=250)
    a, b = Entry(100), Entry(100)
    cache.put("a", a)
    cache.put("b", b)
    b.n = 200  # a prefix KV cache was added to b
    cache.shrink()
    assert cache.get("a") is None and cache.get("b") is b


def test_encode_once_then_predict_from_the_cache(predictor, scene):
    """SamPredictor's shape: encode an image once, then requests on it reuse the encoding."""
    predictor.cache.clear()
    entry, hit = predictor.encode(scene)
    again, hit_again = predictor.encode(scene.copy())  # the same pixels: the same entry
    assert not hit and hit_again and again is entry
    pred = predictor.predict(scene, "refseg", "the red box", force_answer="Sure, <SEG>.")
    assert pred.info["image_cached"] and "sam" not in pred.timings
