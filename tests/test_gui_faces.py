"""The window's face of the shared core: its filters are the core's (pushed into the store's
query), a damaged settings file is told in its banner, and its texts read the same counts as
its library panel. (tests/test_faces.py checks the command line's face.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtPdf")

from desktop.gui import index_worker as w  # noqa: E402
from desktop.gui.main_window import MainWindow  # noqa: E402
from desktop.search import Filters, Query  # noqa: E402

DAY = 24 * 3600.0


@pytest.fixture
def make_window(qtbot, tmp_path, starter_model):
    """Windows on this test's own dirs (tests/conftest.py: config in tmp_path/"config")."""
    made = []

    def make() -> MainWindow:
        win = MainWindow(tmp_path / "data", launch=False)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitUntil(lambda: win.worker_state() == w.IDLE, timeout=60_000)
        made.append(win)
        return win

    yield make
    for win in made:
        assert win.shutdown()


def test_a_damaged_settings_file_is_told_in_the_banner(make_window, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text("{ broken", encoding="utf-8")
    win = make_window()
    assert win.banner.isVisible()
    assert "settings file was damaged" in win.banner.label.text()
    assert (tmp_path / "config" / "config.json.damaged").exists()


def test_the_windows_folder_and_date_filters_return_every_hit_they_keep(qtbot, make_window,
                                                                        tmp_path):
    now = time.time()
    crowd, few = tmp_path / "crowd", tmp_path / "few"
    crowd.mkdir()
    few.mkdir()
    for i in range(110):  # more near-perfect matches than a 5-fold over-fetch of 20 reaches
        path = crowd / f"bread-{i:03}.txt"
        path.write_text(f"Sourdough bread starter, fed daily, note {i}.\n", encoding="utf-8")
        os.utime(path, (now - 400 * DAY, now - 400 * DAY))
    (few / "rye.txt").write_text("A loaf of rye bread.\n", encoding="utf-8")
    (few / "wholemeal.txt").write_text("Wholemeal bread rises overnight.\n", encoding="utf-8")
    os.utime(few / "rye.txt", (now - 60 * DAY, now - 60 * DAY))
    win = make_window()
    win.add_folders([str(crowd), str(few)])
    qtbot.waitUntil(lambda: win.worker_state() == w.WATCHING
                    and win.status().get("files") == 112, timeout=180_000)
    bar = win.search_bar
    bar.folder.setCurrentIndex(bar.folder.findData(str(few)))
    win.search_field.setText("sourdough bread starter")
    with qtbot.waitSignal(win.search_finished, timeout=30_000):
        bar.search_now()
    assert sorted(Path(h.path).name for h in win.results.hits()) == ["rye.txt", "wholemeal.txt"]
    bar.date.setCurrentIndex(bar.date.findData(31))  # past month
    with qtbot.waitSignal(win.search_finished, timeout=30_000):
        bar.search_now()
    assert [Path(h.path).name for h in win.results.hits()] == ["wholemeal.txt"]
    req = bar.request()
    assert req == Query("sourdough bread starter", mode=req.mode, k=req.k,
                        per_file=req.per_file, task=req.task,
                        filters=Filters(folder=str(few), since=req.filters.since))


def test_the_ready_text_reads_the_panels_counts(qtbot, make_window, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(7):
        (docs / f"note-{i}.txt").write_text(f"Note {i}: the hedge needs trimming.\n")
    win = make_window()
    win.add_folders([str(docs)])
    qtbot.waitUntil(lambda: win.worker_state() == w.WATCHING
                    and win.status().get("files") == 7, timeout=120_000)
    files, passages = win.library.totals()
    assert files == 7 and passages >= 7
    text = win.message.text()
    assert f"{passages:,} passages from {files:,} files are ready" in text
    # while counts grow (a run indexing), the text follows the panel
    folder = str(docs)
    win._counts_refreshed({folder: {"files_indexed": 9, "passages": 99, "files_failed": 0,
                                    "files_skipped": 0}})
    assert win.library.totals() == (9, 99)
    assert "99 passages from 9 files are ready" in win.message.text()


def test_a_model_folder_that_cannot_be_saved_is_told_in_the_picker(qtbot, tmp_path,
                                                                   monkeypatch, starter_model):
    from desktop.config import Config
    from desktop.gui.model_picker import ModelPickerDialog
    from desktop.models.discovery import Locations

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the settings folder should be")
    monkeypatch.setenv("SEMDEX_CONFIG_DIR", str(blocked))
    models = tmp_path / "models"
    models.mkdir()
    dialog = ModelPickerDialog(Config(), None, locations=Locations())
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=60_000)
    with qtbot.waitSignal(dialog.models_loaded, timeout=60_000):
        dialog.add_folder(str(models))
    assert "could not be saved in the settings" in dialog.status.text()
    assert str(models.resolve()) in dialog.config.model_folders  # searched all the same
