"""Search filters (folder, file type, modified since/until) applied by the store before ranking,
with the same meaning from the window's Query and from `semdex search --folder/--type/--since`.

The library is built so that a post-filter would fail: 60 files about the same thing fill the
top of every ranking, and the few files the filters keep rank below them. A filter must still
return every passage it keeps (up to k), in every mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.index.store import NOTHING
from desktop.models.embedder import EmbedderSettings
from desktop.search import Filters, Query

ROOT = Path(__file__).resolve().parent.parent
QUERY = "sourdough bread starter"
DAY = 24 * 3600.0
NOW = time.time()


@pytest.fixture(scope="module")
def library(tmp_path_factory, starter_model):
    docs = tmp_path_factory.mktemp("filters-docs")
    crowd = docs / "crowd"
    crowd.mkdir()
    for i in range(60):  # each a near-perfect match: they take every place in a top 50
        path = crowd / f"bread-{i:02}.txt"
        path.write_text(f"Sourdough bread starter, fed daily, note {i}.\n", encoding="utf-8")
        os.utime(path, (NOW - 400 * DAY, NOW - 400 * DAY))
    few = docs / "few"
    few.mkdir()
    (few / "old.md").write_text("# Baking\n\nA loaf of rye bread.\n", encoding="utf-8")
    os.utime(few / "old.md", (NOW - 40 * DAY, NOW - 40 * DAY))
    (few / "recent.txt").write_text("Wholemeal bread rises overnight.\n", encoding="utf-8")
    os.utime(few / "recent.txt", (NOW - 2 * DAY, NOW - 2 * DAY))
    (few / "oven.html").write_text("<html><body><p>The oven bakes bread at 220 degrees."
                                   "</p></body></html>", encoding="utf-8")
    os.utime(few / "oven.html", (NOW - 3 * 3600, NOW - 3 * 3600))
    # a sibling whose name starts like the folder: not "under" it
    (docs / "few-more").mkdir()
    (docs / "few-more" / "bread.txt").write_text("Sourdough bread, again.\n", encoding="utf-8")
    os.utime(docs / "few-more" / "bread.txt", (NOW - 200 * DAY, NOW - 200 * DAY))
    data = tmp_path_factory.mktemp("filters-data")
    engine = Engine(data, model=starter_model, settings=EmbedderSettings(chunk_tokens=64))
    last = list(engine.index([docs]))[-1]
    assert last.phase == "done" and last.problems == [] and last.files_done == 64
    yield engine, docs, data
    engine.close()


def run(engine: Engine, mode: str, k: int = 10, **filters) -> list:
    return engine.run_query(Query(QUERY, mode=mode, k=k, per_file=None,
                                  filters=Filters.of(**filters)))


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_a_narrow_folder_filter_returns_every_file_it_keeps(library, mode):
    engine, docs, _ = library
    unfiltered = run(engine, mode)
    assert all("/crowd/" in h.path for h in unfiltered)  # the few never reach the top
    hits = run(engine, mode, folder=str(docs / "few"))
    names = sorted(Path(h.path).name for h in hits)
    assert names == ["old.md", "oven.html", "recent.txt"]  # (each says "bread", for BM25)
    assert all(Path(h.path).parent == docs / "few" for h in hits)  # not few-more/


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_type_and_date_filters_keep_exactly_their_files(library, mode):
    engine, docs, _ = library
    assert [Path(h.path).name for h in run(engine, mode, types=["html"])] == ["oven.html"]
    md = run(engine, mode, types=["text"], folder=str(docs / "few"))  # text = txt, md, rst
    assert sorted(Path(h.path).name for h in md) == ["old.md", "recent.txt"]
    week = run(engine, mode, since=NOW - 7 * DAY)
    assert sorted(Path(h.path).name for h in week) == ["oven.html", "recent.txt"]
    older = run(engine, mode, until=NOW - 7 * DAY, folder=str(docs / "few"))
    assert [Path(h.path).name for h in older] == ["old.md"]
    month = run(engine, mode, since=NOW - 100 * DAY, until=NOW - DAY)
    assert sorted(Path(h.path).name for h in month) == ["old.md", "recent.txt"]
    # most files match: the store lists those that do not (a short NOT IN)
    year = run(engine, mode, k=100, since=NOW - 500 * DAY, until=NOW - 300 * DAY)
    assert len({h.path for h in year}) == 60 and all("/crowd/" in h.path for h in year)


def test_a_filter_nothing_passes_returns_nothing_without_searching(library):
    engine, docs, _ = library
    assert engine.store.where_clause(since=NOW + DAY) == NOTHING
    assert run(engine, "hybrid", since=NOW + DAY) == []
    assert run(engine, "semantic", folder=str(docs / "nowhere")) == []
    with pytest.raises(ValueError, match="unknown file type"):
        Filters.of(types=["spreadsheet"])


def semdex(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop.cli", "--data-dir", str(data),
                           "search", QUERY, "--json", "--per-file", "0", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_the_cli_filters_mean_what_the_window_filters_mean(library):
    engine, docs, data = library
    cases = [
        (["--folder", str(docs / "few")], dict(folder=str(docs / "few"))),
        (["--type", "html", "--type", "text", "--folder", str(docs / "few")],
         dict(types=["html", "text"], folder=str(docs / "few"))),
        (["--since", "7d"], dict(since=NOW - 7 * DAY)),
        (["--until", time.strftime("%Y-%m-%d", time.localtime(NOW - 30 * DAY)),
          "--folder", str(docs / "few")], dict(until=NOW - 30 * DAY, folder=str(docs / "few"))),
    ]
    for flags, filters in cases:
        proc = semdex(data, *flags)
        assert proc.returncode == 0, proc.stderr
        got = sorted(r["path"] for r in json.loads(proc.stdout)["results"])
        want = sorted(h.path for h in engine.run_query(
            Query(QUERY, k=10, per_file=None, filters=Filters.of(**filters))))
        assert got == want and got, (flags, got, want)


@pytest.mark.parametrize(("flags", "message"), [
    (["--since", "last tuesday"], "--since: expected a date"),
    (["--since", "2026-12-01", "--until", "2026-11-01"], "--since must be before --until"),
    (["--folder", "/no/such/folder"], "--folder: not a folder"),
])
def test_bad_filter_flags_are_told_in_one_line(library, flags, message):
    _, _, data = library
    proc = semdex(data, *flags)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
