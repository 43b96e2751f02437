"""The main window against the real worker: the starter model, a real store, real files.

Each test starts the window on its own data, config and log dirs. Folders are added the ways a
person adds them (a drop of a folder URL, the Add Folder action), the tests wait for the worker's
signals, then search, select and look at the preview. The event loop's responsiveness is
measured with a 10 ms timer while indexing runs: the bound asserted here is generous (shared,
loaded test machines); bench/gui_responsiveness.py measures the real figure.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtPdf")

from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog  # noqa: E402

from desktop.gui import index_worker as w  # noqa: E402
from desktop.gui.app import ErrorBridge  # noqa: E402
from desktop.gui.main_window import MainWindow  # noqa: E402
from desktop.index.lock import writer_alive  # noqa: E402
from tests.fixtures.documents import make_corrupt_pdf, make_pdf  # noqa: E402
from tests.fixtures.tiny_gguf import write_tiny_llama  # noqa: E402

PASSAGE = "The boiler pressure gauge should read between one and two bar when the system is cold."
TOPICS = ("the garden hedge needs trimming", "the car insurance renews in March",
          "grandmother's recipe for plum cake", "the bicycle chain was oiled",
          "a list of books to read this summer", "the roof gutter is blocked with leaves",
          "notes from the school parents' evening", "the dog's vaccination is due")


class GapMeter:
    """The longest wait between ticks of a 10 ms timer: how long the GUI thread was blocked."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def __enter__(self) -> GapMeter:
        self._last = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()

    @property
    def max_ms(self) -> float:
        return max(self.gaps, default=0.0) * 1000


@pytest.fixture
def env(tmp_path, starter_model):
    """The test's folder, its own data, config and log dirs set by tests/conftest.py."""
    return tmp_path


@pytest.fixture
def window(qtbot, env):
    win = MainWindow(env / "data", launch=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.worker_state() == w.IDLE, timeout=60_000)
    yield win
    t0 = time.monotonic()
    assert win.shutdown(), "the worker thread did not stop"
    assert time.monotonic() - t0 < 10


def notes(folder: Path, n: int, words: int = 1) -> list[Path]:
    """n small, different notes (each a few sentences)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        body = " ".join(f"Note {i}, part {j}: {topic}, remember item {i * 7 + j}."
                        for j in range(words))
        path = folder / f"note-{i:03d}.txt"
        path.write_text(body + "\n", encoding="utf-8")
        out.append(path)
    return out


def drop_folder(win: MainWindow, folder: Path) -> None:
    """Drop a folder URL on the results area, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    target = win.results_stack.currentWidget()
    pos = QPointF(target.rect().center())
    actions = Qt.DropAction.CopyAction | Qt.DropAction.LinkAction
    enter = QDragEnterEvent(target.rect().center(), actions, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, actions, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    assert drop.isAccepted()


def folder_status(win: MainWindow, folder: Path) -> dict:
    return next((f for f in win.status().get("folders", []) if f["path"] == str(folder)), {})


def search(qtbot, win: MainWindow, query: str) -> list:
    win.search_field.clear()
    with qtbot.waitSignal(win.search_finished, timeout=30_000):
        qtbot.keyClicks(win.search_field, query)  # debounced: one search once typing pauses
    return win.results.hits()


def test_first_run_drop_index_search_preview(qtbot, window, env):
    win = window
    # First run: the starter model, a data dir, a welcome where results will be.
    assert (env / "data").is_dir()
    assert win.searcher.engine is not None and win.searcher.engine.model.is_starter
    assert "Drag a folder here" in win.message.text()
    assert win.results_stack.currentWidget() is win.message
    # What start-up loaded is out of the garbage collector's sight (its full collections
    # held the GIL for 50-100 ms while indexing: see bench/gui_responsiveness.py).
    assert gc.get_freeze_count() > 10_000

    docs = env / "docs"
    notes(docs, 120)
    make_pdf(docs / "manual.pdf", ["Heating manual. Contents and safety notes.",
                                   PASSAGE + " If it reads lower, top it up.", "Index."])
    make_corrupt_pdf(docs / "broken.pdf")

    with GapMeter() as meter:
        drop_folder(win, docs)
        qtbot.waitUntil(lambda: win.worker_state() == w.WATCHING
                        and bool(folder_status(win, docs).get("last_sync")), timeout=60_000)
    print(f"\nmax event-loop gap while indexing {len(meter.gaps)} ticks: {meter.max_ms:.1f} ms")
    assert meter.max_ms < 500

    st = folder_status(win, docs)
    assert st["files_indexed"] == 121 and st["files_failed"] == 1
    problems = dict(win.library.problems(str(docs)))
    assert "corrupt PDF" in problems[str(docs / "broken.pdf")]
    assert "1 failed" in win.library.folder_text(str(docs))
    assert "Up to date" in win.library.folder_text(str(docs))

    hits = search(qtbot, win, "boiler pressure gauge")
    assert win.results_stack.currentWidget() is win.results_view
    rows = [i for i, h in enumerate(hits) if h.path.endswith("manual.pdf") and h.page == 2]
    assert rows, [(h.path, h.page) for h in hits]
    win.results_view.setCurrentIndex(win.results.index(rows[0]))
    assert win.preview.path() == str(docs / "manual.pdf")
    assert win.preview.current_page() == 2
    assert win.preview.highlight_rects()

    # Only the latest query's answer is shown: an earlier one still running is dropped.
    shown: list[int] = []
    win.search_finished.connect(shown.append)
    win.search_field.setText("plum cake recipe")
    win.run_search()
    win.search_field.setText("boiler pressure gauge")
    win.run_search()
    qtbot.waitUntil(lambda: bool(shown), timeout=30_000)
    qtbot.wait(300)
    assert len(shown) == 1 and win.results.query == "boiler pressure gauge"

    # Enter searches at once, with the file-type filter.
    with qtbot.waitSignal(win.search_finished, timeout=30_000):
        win.search_bar.kind.setCurrentIndex(win.search_bar.kind.findData("pdf"))
        qtbot.keyClick(win.search_field, Qt.Key.Key_Return)
    assert {Path(h.path).suffix for h in win.results.hits()} == {".pdf"}
    assert win.errors() == []


@pytest.mark.slow
def test_add_folder_cancel_pause_resume_remove(qtbot, window, env, monkeypatch):
    win = window
    many = env / "many"
    notes(many, 200, words=3)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(many))
    win.add_action.trigger()
    qtbot.waitUntil(lambda: win.library.progress() is not None
                    and win.library.progress().files_done >= 10, timeout=60_000)

    # A search while indexing is answered at once: it does not queue behind the indexing.
    # (What it finds depends on what was written so far: passages are written in batches.)
    t0 = time.monotonic()
    search(qtbot, win, "garden hedge trimming")
    took = time.monotonic() - t0 - 0.3  # less the typing pause before a search starts
    assert win.worker_state() == w.INDEXING, "indexing finished before the search"
    print(f"\nsearch during indexing answered in {took:.2f} s")
    assert took < 5

    with GapMeter() as meter:
        t0 = time.monotonic()
        qtbot.mouseClick(win.library.cancel_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.worker_state() == w.PAUSED, timeout=10_000)
        stopped = time.monotonic() - t0
    print(f"cancel took {stopped:.2f} s; max gap {meter.max_ms:.1f} ms")
    assert stopped < 5 and meter.max_ms < 500
    qtbot.waitUntil(lambda: writer_alive(win.data_dir) is None, timeout=5_000)  # lock released
    done = folder_status(win, many).get("files_indexed", 0)
    assert 0 < done < 200
    assert win.library.pause_button.text() == "Resume"

    qtbot.mouseClick(win.library.pause_button, Qt.MouseButton.LeftButton)  # Resume
    qtbot.waitUntil(lambda: folder_status(win, many).get("files_indexed") == 200
                    and win.worker_state() == w.WATCHING, timeout=60_000)

    # Pause stops the sync and frees the data dir; resume catches up what changed meanwhile.
    win.pause_action.trigger()
    qtbot.waitUntil(lambda: win.worker_state() == w.PAUSED, timeout=10_000)
    qtbot.waitUntil(lambda: writer_alive(win.data_dir) is None, timeout=5_000)
    (many / "while-paused.txt").write_text("The lawnmower blade was sharpened in April.\n")
    time.sleep(0.5)
    assert folder_status(win, many)["files_indexed"] == 200
    win.resume_action.trigger()
    qtbot.waitUntil(lambda: folder_status(win, many).get("files_indexed") == 201
                    and win.worker_state() == w.WATCHING, timeout=60_000)
    assert writer_alive(win.data_dir)["mode"] == "watch"

    # Remove forgets the folder and its passages.
    win.remove_folder(str(many))
    qtbot.waitUntil(lambda: not win.status().get("folders"), timeout=20_000)
    assert win.status()["passages"] == 0
    assert search(qtbot, win, "lawnmower blade") == []
    assert "Nothing found" in win.message.text()
    assert win.errors() == []


def test_switch_model_keeps_old_results_until_new_index_is_ready(qtbot, window, env):
    win = window
    docs = env / "docs"
    notes(docs, 6)
    win.add_folders([str(docs)])
    qtbot.waitUntil(lambda: win.worker_state() == w.WATCHING
                    and folder_status(win, docs).get("files_indexed") == 6, timeout=60_000)
    starter = win.searcher.engine
    assert win.search_bar.task.count() == 1 and not win.search_bar.task.isEnabled()

    tiny = write_tiny_llama(env / "e5-mistral-7b-instruct-tiny.gguf").resolve()
    searching_with = []  # which engine searches used when indexing with the new model began
    win.worker.model_switch_started.connect(lambda name: searching_with.append(
        win.searcher.engine))
    win.switch_model(str(tiny), "")
    qtbot.waitUntil(lambda: win.searcher.engine is not starter, timeout=60_000)
    assert searching_with == [starter]
    new = win.searcher.engine
    assert new.model.path == tiny and new.store.count_chunks() == 6
    # The instruction-tuned family offers its task presets and an own instruction.
    assert win.search_bar.task.count() == 7
    assert json.loads((win.data_dir / "state.json").read_text())["model"]["path"] == str(tiny)
    assert search(qtbot, win, "hedge")
    assert win.errors() == []


def test_errors_from_any_thread_reach_the_window(qtbot, window, monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the logging hook's place
    bridge = ErrorBridge()
    bridge.raised.connect(window.report_error)
    bridge.install()
    try:
        def boom() -> None:
            raise RuntimeError("something broke in a thread")

        t = threading.Thread(target=boom)
        t.start()
        t.join()
        qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5_000)
    finally:
        bridge.uninstall()
    assert "something broke in a thread" in window.banner.label.text()
    assert "Traceback" in window.errors()[-1][1]


@pytest.mark.slow
def test_a_failing_update_is_shown_and_tried_again(qtbot, window, env):
    win = window
    docs = env / "docs"
    notes(docs, 3)
    drop_folder(win, docs)
    qtbot.waitUntil(lambda: win.worker_state() == w.WATCHING
                    and bool(folder_status(win, docs).get("last_sync")), timeout=60_000)
    store = win.worker.engine.store
    real_upsert, fails = store._upsert_files, []

    def full_disk(*args, **kw):
        if len(fails) < 2:
            fails.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_upsert(*args, **kw)

    store._upsert_files = full_disk
    (docs / "late.txt").write_text("A note about the quokka written while the disk was full.")
    qtbot.waitUntil(lambda: win.worker_state() == w.RETRYING, timeout=30_000)
    assert "No space left on device" in win.banner.label.text()
    assert win.library.state_label.text() == "Could not update the index"
    assert "trying again" in win.library.folder_text(str(docs))
    qtbot.waitUntil(lambda: win.worker_state() == w.WATCHING, timeout=60_000)
    assert len(fails) == 2
    assert len(win.errors()) == 1  # told once, not at every try
    assert [h.path for h in win.worker.engine.search("quokka", mode="keyword")] == [
        str(docs / "late.txt")]
    assert "Up to date" in win.library.folder_text(str(docs))


def test_settings_log_and_model_dialogs_open_from_the_menus(qtbot, window, env):
    from desktop.gui.log_view import LogView
    from desktop.gui.model_picker import ModelPickerDialog
    from desktop.gui.settings_dialog import SettingsDialog

    win = window
    win.settings_action.trigger()
    dialog = win.findChild(SettingsDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.excludes.setPlainText("*.tmp")
    assert dialog.save()  # saved to the test's config dir, then applied to the window
    assert win.config.excludes == ["*.tmp"]
    assert json.loads((env / "config" / "config.json").read_text())["excludes"] == ["*.tmp"]
    qtbot.waitUntil(lambda: win.worker.excludes == ("*.tmp",), timeout=5_000)

    win.log_action.trigger()
    qtbot.waitUntil(lambda: any(v.isVisible() for v in win.findChildren(LogView)), timeout=5_000)

    win.model_action.trigger()
    picker = win.findChild(ModelPickerDialog)
    assert picker is not None and picker.isVisible()
    picker.close()
    assert win.errors() == []


def test_a_model_that_crashes_llama_cpp_does_not_take_the_window_down(qtbot, env,
                                                                       starter_model):
    """The window starts with a file that aborts llama.cpp: it is tried in a child process,
    the window stays up and says why, and choosing another model works."""
    from tests.test_model_check import write_aborting_llama

    bad = write_aborting_llama(env / "models" / "e5-mistral-crash.gguf")
    win = MainWindow(env / "data", model=str(bad), launch=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.worker_state() == w.STOPPED, timeout=60_000)
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=5_000)
    text = win.banner.label.text()
    assert "e5-mistral-crash.gguf" in text and "GGML_ASSERT" in text, text
    assert "choose another" in text and win.banner.model_button.isVisible()
    if os.environ.get("SEMDEX_SCREENSHOTS"):
        win.grab().save(os.path.join(os.environ["SEMDEX_SCREENSHOTS"], "model-crashed.png"))
    win.switch_model(str(starter_model), "")
    qtbot.waitUntil(lambda: win.searcher.engine is not None
                    and win.searcher.engine.model.path == starter_model.resolve(),
                    timeout=60_000)
    assert win.shutdown(), "the worker thread did not stop"
