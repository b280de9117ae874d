"""The benchmark's extras: the timings the tests do not assert (a shared CPU makes them flaky)."""

from xsam_core.evaluation import bench


def test_extras_time_a_refusal_and_an_overlay():
    t = bench.refusal_and_render_timings(render_size=(64, 48), repeats=2)
    assert t["overlay_size"] == [64, 48] and t["repeats"] == 2
    assert t["refuse_48mp_header_ms"] > 0 and t["overlay_ms"] > 0


def test_no_models_runs_only_the_extras(capsys, monkeypatch):
    timings = {"refuse_48mp_header_ms": 0.1, "overlay_ms": 2.0, "overlay_size": [4000, 3000], "repeats": 3}
    monkeypatch.setattr(bench, "refusal_and_render_timings", lambda: timings)  # the real one takes seconds
    assert bench.main(["--models", ""]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "extras (median of 3): refuse a 48-MP PNG header 0.10 ms, overlay on 4000×3000 2.0 ms"]
    assert bench.main(["--models", "", "--no-extras"]) == 0
    assert capsys.readouterr().out == ""
