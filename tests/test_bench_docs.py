"""The benchmark harness rewrites only the generated part of docs/benchmarks.md: a city run
had replaced the notes written by hand above it."""

from __future__ import annotations

from bench.run import GENERATED, docs_with


def test_a_city_run_keeps_the_notes_above_the_marker_and_replaces_the_rest():
    current = f"# Benchmarks\n\n## Notes by hand\n\nkept\n\n{GENERATED}\n\nold table\n"
    new = docs_with(current, "# Benchmarks\n\nnew table\n")
    assert new.startswith("# Benchmarks\n\n## Notes by hand\n\nkept\n\n")
    assert new.count(GENERATED) == 1 and "new table" in new and "old table" not in new
    assert docs_with(new, "# Benchmarks\n\nnewer\n").split(GENERATED)[0] == new.split(GENERATED)[0]


def test_a_page_without_the_marker_gets_one():
    new = docs_with("", "# Benchmarks\n\ntable\n")
    assert new.startswith("# Benchmarks\n\n" + GENERATED) and new.endswith("table\n")
