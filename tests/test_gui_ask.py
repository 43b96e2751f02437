"""Ask in the window: the real window, its worker and its answerer, the starter model and the
real SmolLM2 chat model. The answer streams into the panel above the results (the GUI thread
never blocked long: a 10 ms timer measures it), a citation opens its passage in the preview,
Stop stops at once, a question the documents cannot answer is refused in words, and with no
chat model chosen the banner says where to choose one."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("PySide6.QtPdf")

from PySide6.QtCore import Qt  # noqa: E402

from desktop.config import Config  # noqa: E402
from desktop.gui import index_worker as w  # noqa: E402
from desktop.gui.main_window import MainWindow  # noqa: E402
from tests.test_gui_main import GapMeter  # noqa: E402

DOCS = {
    "bread.txt": "Sourdough bread needs a starter of flour and water, fed every day. Knead "
                 "the dough, let it rise overnight, and bake it at 240 degrees for 40 minutes.",
    "garden.md": "# Tomatoes\n\nTomato plants need full sun, deep watering twice a week and a "
                 "stake to climb.",
}


@pytest.fixture
def window(qtbot, tmp_path, starter_model, smollm2):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text + "\n", encoding="utf-8")
    config = Config(chat_model=str(smollm2), chat_context=2048, answer_tokens=48)
    config.save()
    win = MainWindow(tmp_path / "data", config=config, launch=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.worker_state() == w.IDLE, timeout=60_000)
    win.add_folders([str(docs)])
    qtbot.waitUntil(lambda: win.status().get("passages", 0) >= 2
                    and win.worker_state() in (w.WATCHING, w.IDLE), timeout=120_000)
    yield win
    assert win.shutdown()


def ask(qtbot, win: MainWindow, question: str, timeout: int = 120_000):
    win.search_field.setText(question)
    with qtbot.waitSignal(win.answer_finished, timeout=timeout) as done:
        qtbot.mouseClick(win.search_bar.ask_button, Qt.MouseButton.LeftButton)
    return done.args[0]


def test_an_answer_streams_into_the_panel_and_cites_open_the_preview(qtbot, window):
    win = window
    with GapMeter() as gaps:
        done = ask(qtbot, win, "How long do I bake sourdough bread?")
    panel = win.answer_panel
    assert panel.isVisible() and not done.refused
    assert panel.answer.strip() == done.answer and panel.text.toPlainText().strip()
    assert panel.sources[1].path.endswith("bread.txt")
    assert not panel.stop_button.isEnabled()  # done
    # an answer that cites nothing says so (this small model seldom cites)
    assert ("cites none of your files" in panel.state.text()) == (not done.cited)
    # the GUI thread kept its 10 ms timer going while the answer streamed (a bound with room
    # for a loaded test machine: bench/gui_responsiveness.py --ask measures the real figure)
    assert gaps.max_ms < 250, gaps.max_ms
    # a citation opens its passage in the preview, whether or not this small model cited it
    panel.citation_clicked.emit(1)
    qtbot.waitUntil(lambda: win.preview.path().endswith("bread.txt"), timeout=10_000)
    assert win.preview.highlighted_range() is not None
    # the results list shows the passages too
    qtbot.waitUntil(lambda: win.results.rowCount() >= 1, timeout=30_000)


def test_stop_stops_at_once(qtbot, window):
    win = window
    win.config.answer_tokens = 400
    win.search_field.setText("Write everything about bread, tomatoes and ovens, at length.")
    qtbot.mouseClick(win.search_bar.ask_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(win.answer_panel.answer) > 5, timeout=120_000)
    with qtbot.waitSignal(win.answer_finished, timeout=10_000) as done:
        t0 = time.monotonic()
        qtbot.mouseClick(win.answer_panel.stop_button, Qt.MouseButton.LeftButton)
    assert time.monotonic() - t0 < 2.0
    assert done.args[0].stopped == "cancelled"
    assert "Stopped" in win.answer_panel.state.text()


def test_an_unanswerable_question_is_refused_in_words(qtbot, window):
    win = window
    done = ask(qtbot, win, "Who won the football world cup in 1998?")
    assert done.refused and done.stopped == "refused"
    assert "No answer" in win.answer_panel.text.toPlainText()



def test_without_a_chat_model_the_banner_says_where_to_choose_one(qtbot, tmp_path,
                                                                  starter_model):
    win = MainWindow(tmp_path / "data", config=Config(), launch=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.worker_state() == w.IDLE, timeout=60_000)
    win.search_field.setText("anything")
    qtbot.mouseClick(win.search_bar.ask_button, Qt.MouseButton.LeftButton)
    assert win.banner.isVisible() and "No chat model is chosen" in win.banner.label.text()
    assert win.banner.model_button.isVisible()
    assert not win.answer_panel.isVisible()
    assert win.shutdown()
