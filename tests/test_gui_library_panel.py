"""The library panel on its own (real widgets, offscreen): live counts while a run indexes, and
a folder with many failures, which used to redraw the whole tree once per failure."""

from __future__ import annotations

from desktop.gui import worker as w
from desktop.gui.library_panel import LISTED, LibraryPanel

ROOT = "/home/me/Documents"


def folder(**kw) -> dict:
    f = {"path": ROOT, "exists": True, "files_indexed": 0, "files_failed": 0,
         "files_skipped": 0, "passages": 0, "pending": 3, "last_sync": None, "problems": []}
    f.update(kw)
    return f


def make_panel(qtbot) -> LibraryPanel:
    panel = LibraryPanel()
    qtbot.addWidget(panel)
    panel.set_status({"folders": [folder()], "files": 0, "passages": 0})
    panel.set_state(w.INDEXING)
    return panel


def test_counts_grow_while_a_folder_indexes(qtbot):
    panel = make_panel(qtbot)
    assert "Indexing" in panel.folder_text(ROOT) and "0 files · 0 passages" in panel.folder_text(
        ROOT)
    panel.set_counts({ROOT: {"files_indexed": 120, "passages": 135, "files_failed": 2,
                             "files_skipped": 1},
                      "/not/a/library/folder": {"files_indexed": 9, "passages": 9,
                                                "files_failed": 0, "files_skipped": 0}})
    text = panel.folder_text(ROOT)
    assert "120 files · 135 passages · 3 failed" in text and "Indexing" in text
    assert panel.summary.text() == "120 files · 135 passages indexed"
    # The full status at the end of the run replaces the live figures.
    panel.set_status({"folders": [folder(files_indexed=400, passages=416, pending=0,
                                         last_sync=1.0)], "files": 400, "passages": 416})
    panel.set_state(w.WATCHING)
    assert "Up to date" in panel.folder_text(ROOT)
    assert "400 files · 416 passages" in panel.folder_text(ROOT)


def test_many_failures_are_drawn_together_and_listed_in_part(qtbot):
    panel = make_panel(qtbot)
    redraws = []
    real = panel._rebuild
    panel._rebuild = lambda: (redraws.append(1), real())[1]
    n = LISTED + 150
    for i in range(n):
        panel.add_problem(f"{ROOT}/scans/scan-{i:04d}.pdf", "corrupt PDF: no pages")
    assert redraws == []  # drawn once, a moment later, not once per failure
    qtbot.waitUntil(lambda: bool(redraws), timeout=2000)
    assert len(redraws) == 1

    listed = panel.problems(ROOT)
    assert len(listed) == LISTED
    assert listed[0] == (f"{ROOT}/scans/scan-0000.pdf", "corrupt PDF: no pages")
    top = panel.tree.topLevelItem(0)
    assert top.childCount() == LISTED + 1
    assert "150 more" in top.child(LISTED).text(0)
    assert f"{n:,} failed" in panel.folder_text(ROOT)

    # Failures the status now knows are not listed twice.
    known = [{"path": p, "status": "failed", "reason": r} for p, r in listed]
    panel.set_status({"folders": [folder(files_failed=len(known), problems=known)],
                      "files": 0, "passages": 0})
    assert len(panel.problems(ROOT)) == LISTED
    assert f"{n:,} failed" in panel.folder_text(ROOT)
