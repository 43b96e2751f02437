"""The library panel on its own (real widgets, offscreen): live counts while a run indexes, and
a folder with many failures, which used to redraw the whole tree once per failure.

The statuses the panel is given are real ones, from Engine.status() on the starter model: a key
renamed in the engine breaks these tests, as it would break the panel."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from desktop.engine import Engine
from desktop.gui import index_worker as w
from desktop.gui.library_panel import LISTED, LibraryPanel


class Library(NamedTuple):
    root: str
    added: dict[str, Any]  # the folder added, its 3 files not indexed yet
    indexed: dict[str, Any]  # after indexing them


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, starter_model: Path) -> Library:
    base = tmp_path_factory.mktemp("library-panel")
    docs = base / "Documents"
    docs.mkdir()
    for name, text in (("boiler.txt", "The boiler service is booked for Tuesday morning."),
                       ("garden.md", "# Garden\n\nPlant the tulip bulbs in October."),
                       ("bread.txt", "Feed the starter with rye flour, then bake the loaf.")):
        (docs / name).write_text(text + "\n", encoding="utf-8")
    with Engine(base / "data") as engine:
        (root,) = engine.add_folders([docs])
        added = engine.status()
        for _ in engine.index([docs]):
            pass
        indexed = engine.status()
    assert added["folders"][0]["pending"] == 3 and indexed["files"] == 3
    return Library(root, added, indexed)


def make_panel(qtbot, library: Library) -> LibraryPanel:
    panel = LibraryPanel()
    qtbot.addWidget(panel)
    panel.set_status(copy.deepcopy(library.added))
    panel.set_state(w.INDEXING)
    return panel


def test_counts_grow_while_a_folder_indexes(qtbot, library):
    root = library.root
    panel = make_panel(qtbot, library)
    assert "Indexing" in panel.folder_text(root) and "0 files · 0 passages" in panel.folder_text(
        root)
    panel.set_counts({root: {"files_indexed": 120, "passages": 135, "files_failed": 2,
                             "files_skipped": 1},
                      "/not/a/library/folder": {"files_indexed": 9, "passages": 9,
                                                "files_failed": 0, "files_skipped": 0}})
    text = panel.folder_text(root)
    assert "120 files · 135 passages · 3 failed" in text and "Indexing" in text
    assert panel.summary.text() == "120 files · 135 passages indexed"
    # The full status at the end of the run replaces the live figures.
    status = copy.deepcopy(library.indexed)
    panel.set_status(status)
    panel.set_state(w.WATCHING)
    assert "Up to date" in panel.folder_text(root)
    assert f"3 files · {status['passages']} passages" in panel.folder_text(root)
    assert panel.summary.text() == f"3 files · {status['passages']} passages indexed"


def test_many_failures_are_drawn_together_and_listed_in_part(qtbot, library):
    root = library.root
    panel = make_panel(qtbot, library)
    redraws = []
    real = panel._rebuild
    panel._rebuild = lambda: (redraws.append(1), real())[1]
    n = LISTED + 150
    for i in range(n):
        panel.add_problem(f"{root}/scans/scan-{i:04d}.pdf", "corrupt PDF: no pages")
    assert redraws == []  # drawn once, a moment later, not once per failure
    qtbot.waitUntil(lambda: bool(redraws), timeout=2000)
    assert len(redraws) == 1

    listed = panel.problems(root)
    assert len(listed) == LISTED
    assert listed[0] == (f"{root}/scans/scan-0000.pdf", "corrupt PDF: no pages")
    top = panel.tree.topLevelItem(0)
    assert top.childCount() == LISTED + 1
    assert "150 more" in top.child(LISTED).text(0)
    assert f"{n:,} failed" in panel.folder_text(root)

    # Failures the status now knows are not listed twice.
    known = [{"path": p, "status": "failed", "reason": r} for p, r in listed]
    status = copy.deepcopy(library.added)
    (folder,) = status["folders"]
    assert {"files_failed", "problems"} <= folder.keys()
    folder.update(files_failed=len(known), problems=known)
    panel.set_status(status)
    assert len(panel.problems(root)) == LISTED
    assert f"{n:,} failed" in panel.folder_text(root)
