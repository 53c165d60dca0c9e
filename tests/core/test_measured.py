"""handler.core.measured: one data file of measured figures, each section with where it was measured, and the
modules that price or budget with it reading it rather than figures of their own."""

from __future__ import annotations

import json

import pytest

from handler.core import deadline, measured


def test_every_section_says_which_bench_machine_isa_and_date():
    sections = json.loads(measured.MEASURED_FILE.read_text(encoding="utf-8"))
    assert {"deadline", "engine", "init"} <= set(sections)
    for name, figures in sections.items():
        missing = [key for key in measured.PROVENANCE if not str(figures.get(key, "")).strip()]
        assert not missing, f"section {name!r} lacks {missing}"


def test_the_deadline_budgets_with_the_data_files_figures():
    figures = measured.measured("deadline")
    assert figures["forward_ms"] == deadline.FORWARD_MS
    assert set(deadline.FORWARD_MS) == {"normal", "fast", "rapid"}
    assert figures["per_object_ms"] == deadline.PER_OBJECT_MS
    assert figures["per_megapixel_ms"] == deadline.PER_MEGAPIXEL_MS
    assert figures["per_object_megapixel_ms"] == deadline.PER_OBJECT_MEGAPIXEL_MS


def test_write_section_replaces_one_section_and_keeps_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(measured, "MEASURED_FILE", tmp_path / "measured.json")
    measured._all.cache_clear()
    try:
        where = {"source": "bench/x.py", "machine": "m", "isa": "AVX2", "date": "2026-01-02"}
        measured.write_section("a", {"seconds": 1.0}, **where)
        measured.write_section("b", {"seconds": 2.0}, **where)
        measured.write_section("a", {"seconds": 3.0}, **where)
        assert measured.measured("a") == {**where, "seconds": 3.0}
        assert measured.measured("b")["seconds"] == 2.0
        with pytest.raises(measured.MissingMeasurement, match="no section 'c'"):
            measured.measured("c")
    finally:
        measured._all.cache_clear()
