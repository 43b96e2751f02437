"""The main window: library on the left, search and results in the middle, preview on the right.

The window itself does no work: indexing belongs to the IndexWorker in its QThread, searching
to the Searcher's pool, and this class only turns their signals into what the person sees and
their clicks into requests. Every error, from either worker, from a dialog or from an uncaught
exception, reaches the person through `report_error`: a banner at the top of the window, with
the details (and the log) a click away.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QMetaObject, QSettings, Qt, QThread, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.config import Config, config_dir
from desktop.engine import Engine
from desktop.gui import index_worker as w
from desktop.gui.answer_panel import AnswerPanel
from desktop.gui.answerer import Answerer
from desktop.gui.index_worker import IndexWorker
from desktop.gui.library_panel import LibraryPanel
from desktop.gui.preview import PreviewPane
from desktop.gui.results import HIT_ROLE, ResultDelegate, ResultsModel
from desktop.gui.search_bar import SearchBar
from desktop.gui.searcher import Searcher
from desktop.index.indexer import Progress
from desktop.paths import resolve_data_dir
from desktop.search import Hit, Query

log = logging.getLogger(__name__)

RESULTS_K = 25
QUIT_TIMEOUT_MS = 10_000


def dropped_folders(mime: Any) -> list[str]:
    """Local folders among the URLs of a drag (files are ignored)."""
    if mime is None or not mime.hasUrls():
        return []
    out = []
    for url in mime.urls():
        if url.isLocalFile():
            path = url.toLocalFile()
            if os.path.isdir(path):
                out.append(os.path.abspath(path))
    return out


class ErrorBanner(QFrame):
    """One line at the top of the window saying what went wrong, with details on request."""

    details_clicked = Signal()
    choose_model_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet("#errorBanner { background: #fde2e1; border-bottom: 1px solid #e0a3a0; }"
                           "#errorBanner QLabel { color: #5c1a16; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # shown when the problem is the model: the way out is to pick another one
        self.model_button = QPushButton(self.tr("Choose Model…"))
        self.model_button.clicked.connect(self.choose_model_clicked)
        self.model_button.hide()
        details = QPushButton(self.tr("Details…"))
        details.clicked.connect(self.details_clicked)
        close = QPushButton(self.tr("Dismiss"))
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.model_button)
        layout.addWidget(details)
        layout.addWidget(close)
        self.hide()


class MainWindow(QMainWindow):
    search_finished = Signal(int)  # results shown (their number): for tests and screenshots
    answer_finished = Signal(object)  # an answer done (answer.Done): for tests and benches

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *,
                 config: Config | None = None, model: str | None = None,
                 family: str | None = None, launch: bool = True):
        super().__init__()
        notes: list[str] = []
        if config is None:
            config, notes = Config.load_with_notes()
        self.config = config
        self.data_dir = resolve_data_dir(data_dir or self.config.data_dir)
        self._errors: list[tuple[str, str]] = []  # (message, details), latest last
        self._compute_note = ""  # the last fall-back from the GPU shown
        self._status: dict[str, Any] = {}
        self._engine: Engine | None = None
        self._closing = False
        self._ready_page_shown = False  # "Type to search: N passages from M files are ready"
        self._state = w.LOADING
        self.setWindowTitle(self.tr("Semdex"))
        self.setAcceptDrops(True)
        self.resize(1280, 800)

        self._build(launch)
        self._build_menus()
        self._start_workers(model, family)
        self._restore_layout()
        for note in notes:  # the settings file was damaged or held a wrong value
            self.report_error(note)
        self._show_results_page()

    # -- building ----------------------------------------------------------------------------

    def _build(self, launch: bool) -> None:
        self.banner = ErrorBanner()
        self.banner.details_clicked.connect(self._show_error_details)
        self.banner.choose_model_clicked.connect(self.choose_model)
        self.search_bar = SearchBar()
        self.search_bar.search_requested.connect(self.run_search)
        self.search_bar.ask_requested.connect(self.ask)
        self.search_bar.set_mode(self.config.search_mode)
        self.search_field = self.search_bar.field

        self.library = LibraryPanel()
        self.library.setMinimumWidth(220)
        self.library.add_clicked.connect(self.choose_folder)
        self.library.remove_chosen.connect(self.remove_folder)

        self.results = ResultsModel(self)
        self.results_view = QListView()
        self.results_view.setModel(self.results)
        self.results_view.setItemDelegate(ResultDelegate(self.results_view))
        self.results_view.setUniformItemSizes(True)
        self.results_view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.results_view.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.results_view.selectionModel().currentChanged.connect(self._result_selected)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setMargin(24)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.message.setObjectName("resultsMessage")
        self.message.setStyleSheet(
            "QLabel#resultsMessage[welcome='true'] { border: 2px dashed palette(mid); "
            "border-radius: 14px; margin: 28px; padding: 24px; }")
        self.message.linkActivated.connect(self._message_link)
        self.results_stack = QStackedWidget()
        self.results_stack.addWidget(self.message)
        self.results_stack.addWidget(self.results_view)
        self.results_stack.setMinimumWidth(300)

        self.preview = PreviewPane(launch=launch)
        self.preview.setMinimumWidth(300)

        self.answer_panel = AnswerPanel()
        self.answer_panel.citation_clicked.connect(self._citation_clicked)
        self.answer_panel.stop_clicked.connect(self.stop_answer)
        self.results_column = QSplitter(Qt.Orientation.Vertical)
        self.results_column.setObjectName("answerResultsSplitter")
        self.results_column.addWidget(self.answer_panel)
        self.results_column.addWidget(self.results_stack)
        self.results_column.setStretchFactor(0, 2)
        self.results_column.setStretchFactor(1, 3)
        self.right_split = QSplitter(Qt.Orientation.Horizontal)
        self.right_split.setObjectName("resultsPreviewSplitter")
        self.right_split.addWidget(self.results_column)
        self.right_split.addWidget(self.preview)
        self.right_split.setStretchFactor(0, 4)
        self.right_split.setStretchFactor(1, 5)
        self.main_split = QSplitter(Qt.Orientation.Horizontal)
        self.main_split.setObjectName("librarySplitter")
        self.main_split.addWidget(self.library)
        self.main_split.addWidget(self.right_split)
        self.main_split.setStretchFactor(0, 0)
        self.main_split.setStretchFactor(1, 1)
        self.main_split.setSizes([270, 1010])
        self.right_split.setSizes([470, 540])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.search_bar)
        layout.addWidget(self.main_split, 1)
        self.setCentralWidget(central)
        self.status_label = QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        # Drops anywhere go to the window: no child keeps a dragged folder for itself.
        for child in self.findChildren(QWidget):
            child.setAcceptDrops(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu(self.tr("&File"))
        self.add_action = self._action(self.tr("&Add Folder…"), self.choose_folder,
                                       QKeySequence.StandardKey.Open)
        self.remove_action = self._action(self.tr("&Remove Folder"), self._remove_selected)
        self.quit_action = self._action(self.tr("&Quit"), self.close,
                                        QKeySequence.StandardKey.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        file.addActions([self.add_action, self.remove_action])
        file.addSeparator()
        file.addAction(self.quit_action)

        index = bar.addMenu(self.tr("&Index"))
        self.pause_action = self._action(self.tr("&Pause Indexing"), self.pause)
        self.resume_action = self._action(self.tr("&Resume Indexing"), self.resume)
        self.cancel_action = self._action(self.tr("&Cancel Indexing"), self.cancel_indexing)
        index.addActions([self.pause_action, self.resume_action, self.cancel_action])

        tools = bar.addMenu(self.tr("&Tools"))
        self.model_action = self._action(self.tr("Choose &Model…"), self.choose_model)
        self.settings_action = self._action(self.tr("&Settings…"), self.open_settings,
                                            QKeySequence.StandardKey.Preferences)
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.log_action = self._action(self.tr("Show &Log…"), self.show_log)
        tools.addActions([self.model_action, self.settings_action, self.log_action])

        help_menu = bar.addMenu(self.tr("&Help"))
        about = self._action(self.tr("&About Semdex"), self._about)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(about)
        focus = QAction(self)
        focus.setShortcut(QKeySequence.StandardKey.Find)
        focus.triggered.connect(self.search_field.setFocus)
        self.addAction(focus)
        self.library.pause_clicked.connect(self.pause)
        self.library.resume_clicked.connect(self.resume)
        self.library.cancel_clicked.connect(self.cancel_indexing)

    def _action(self, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(shortcut)
        return action

    def _start_workers(self, model: str | None, family: str | None) -> None:
        c = self.config
        self.worker = IndexWorker(
            self.data_dir, model=model, family=family,
            settings=c.embedder_settings(), sync_settings=c.sync_settings(),
            excludes=c.excludes, extraction=c.extract_settings())
        self.worker_thread = QThread(self)
        self.worker_thread.setObjectName("semdex-worker")
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.run)
        # quit() is thread-safe: the thread ends as soon as run() returns
        self.worker.finished.connect(self.worker_thread.quit, Qt.ConnectionType.DirectConnection)
        self.worker.engine_changed.connect(self._engine_changed)
        self.worker.model_switch_started.connect(self._switch_started)
        self.worker.state_changed.connect(self._state_changed)
        self.worker.progress_reported.connect(self._progress)
        self.worker.problem_found.connect(self.library.add_problem)
        self.worker.status_refreshed.connect(self._status_refreshed)
        self.worker.counts_refreshed.connect(self._counts_refreshed)
        self.worker.failed.connect(self.report_error)
        self.worker.model_failed.connect(self.report_model_error)
        self.searcher = Searcher(self)
        self.searcher.results_arrived.connect(self._results_arrived)
        self.searcher.search_failed.connect(self._search_failed)
        self.answerer = Answerer()
        self.answer_thread = QThread(self)
        self.answer_thread.setObjectName("semdex-answer")
        self.answerer.moveToThread(self.answer_thread)
        self._answer_serial = 0
        self._question = ""
        for signal, slot in ((self.answerer.loading, self._answer_loading),
                             (self.answerer.sources_arrived, self._answer_sources),
                             (self.answerer.text_arrived, self._answer_text),
                             (self.answerer.cited, self._answer_cited),
                             (self.answerer.refused, self._answer_refused),
                             (self.answerer.finished, self._answer_finished),
                             (self.answerer.failed, self._answer_failed)):
            signal.connect(slot)
        self.worker_thread.start()
        self.answer_thread.start()

    # -- layout memory (QSettings: geometry and splitters only) ------------------------------

    def _qsettings(self) -> QSettings:
        return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)

    def _restore_layout(self) -> None:
        s = self._qsettings()
        for key, restore in (("geometry", self.restoreGeometry),
                             ("main_splitter", self.main_split.restoreState),
                             ("results_splitter", self.right_split.restoreState)):
            value = s.value(key)
            if isinstance(value, QByteArray):
                restore(value)

    def _save_layout(self) -> None:
        s = self._qsettings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("main_splitter", self.main_split.saveState())
        s.setValue("results_splitter", self.right_split.saveState())
        s.sync()

    # -- folders -----------------------------------------------------------------------------

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, self.tr("Add a folder to the library"),
                                                str(Path.home()))
        if path:
            self.add_folders([path])

    def add_folders(self, paths: list[str]) -> None:
        paths = [os.path.abspath(p) for p in paths]
        self.status_label.setText(self.tr("Adding {0}…").format(", ".join(paths)))
        self.worker.add_folders(paths)

    def remove_folder(self, path: str) -> None:
        self.worker.remove_folder(path)
        self.status_label.setText(self.tr("Removing {0} from the library…").format(path))

    def _remove_selected(self) -> None:
        path = self.library.selected_folder()
        if path is None:
            folders = self.library.folders()
            if len(folders) != 1:
                self.report_error(self.tr("Select the folder to remove in the library first."))
                return
            path = folders[0]
        answer = QMessageBox.question(
            self, self.tr("Remove folder"),
            self.tr("Remove {0} from the library? Its index is deleted; the files are not "
                    "touched.").format(path))
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_folder(path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_folders(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if dropped_folders(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        folders = dropped_folders(event.mimeData())
        if not folders:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_folders(folders)

    # -- indexing ----------------------------------------------------------------------------

    def pause(self) -> None:
        self.worker.pause()

    def resume(self) -> None:
        self.worker.resume()

    def cancel_indexing(self) -> None:
        """Stop the current indexing run now (what is done is kept) and leave it paused."""
        self.worker.pause()
        self.status_label.setText(self.tr("Indexing cancelled; resume it at any time."))

    def _engine_changed(self, engine: Engine) -> None:
        previous, self._engine = self._engine, engine
        self.searcher.set_engine(engine)
        self.answerer.set_engine(engine)
        profile = engine.model.profile
        self.search_bar.set_profile(profile, self.config.task, self.config.custom_instruction)
        name = engine.model.info.name + (self.tr(" (starter)") if engine.model.is_starter
                                         else "")
        self.model_name = name
        self.setWindowTitle(self.tr("Semdex · {0}").format(name))
        if previous is not None:
            self.status_label.setText(self.tr("Now searching with {0}.").format(name))
            self.run_search()
        else:
            self._show_results_page()

    def _switch_started(self, name: str) -> None:
        self.status_label.setText(self.tr(
            "Indexing with {0}; results come from the previous model until it is done.")
            .format(name))

    def worker_state(self) -> str:
        """What the worker last said it is doing (LOADING, INDEXING, WATCHING, PAUSED, ...)."""
        return self._state

    def status(self) -> dict[str, Any]:
        """The library's status as the worker last reported it (Engine.status())."""
        return self._status

    def _state_changed(self, state: str) -> None:
        self._state = state
        self.library.set_state(state)
        running = state in (w.INDEXING, w.WATCHING, w.BUSY, w.RETRYING)
        self.pause_action.setEnabled(running)
        self.resume_action.setEnabled(state in (w.PAUSED, w.STOPPED))
        self.cancel_action.setEnabled(state == w.INDEXING)
        if state == w.INDEXING:
            self.status_label.setText(self.tr("Indexing new and changed files…"))
        elif state == w.WATCHING:
            self.status_label.setText(self.tr("Up to date."))
        elif state == w.PAUSED:
            self.status_label.setText(self.tr("Indexing paused."))
        elif state == w.RETRYING:
            self.status_label.setText(self.tr("The last update failed; trying again soon."))

    def _progress(self, prog: Progress) -> None:
        self.library.set_progress(prog)

    def _counts_refreshed(self, counts: dict[str, dict[str, int]]) -> None:
        self.library.set_counts(counts)
        if self._ready_page_shown:  # its counts grow with the panel's
            self._show_results_page()

    def _status_refreshed(self, status: dict[str, Any]) -> None:
        self._status = status
        self.library.set_status(status)
        note = (status.get("compute") or {}).get("note")
        if note and note != self._compute_note:  # the GPU could not take the model: once
            self._compute_note = note
            self.report_error(note, (status.get("compute") or {}).get("why", ""))
        self.search_bar.set_folders([f["path"] for f in status.get("folders", [])])
        if not self.results.rowCount():
            self._show_results_page()

    # -- searching ---------------------------------------------------------------------------

    def run_search(self) -> None:
        req = self.search_bar.request(RESULTS_K, self.config.per_file or None)
        if req is None:
            self.searcher.cancel()
            self.results.clear()
            self.preview.clear()
            self._show_results_page()
            return
        if self._engine is None:
            self._show_message(self.tr("The model is still loading; your search runs as soon "
                                       "as it is ready."))
            QTimer.singleShot(500, self.run_search)
            return
        self.searcher.search(req)
        self.status_label.setText(self.tr("Searching…"))

    def _results_arrived(self, serial: int, req: Query, hits: list[Hit],
                         seconds: float) -> None:
        if serial != self.searcher.latest:
            return
        self.results.set_results(req.text, hits, req.mode)
        self.status_label.setText(self.tr("{0} results in {1:.0f} ms").format(
            len(hits), seconds * 1000))
        if hits:
            self.results_view.scrollToTop()
            self.results_stack.setCurrentWidget(self.results_view)
        else:
            self.preview.clear()
            self._show_results_page(req.text)
        self.search_finished.emit(len(hits))

    def _search_failed(self, serial: int, req: Query, message: str,
                       details: str) -> None:
        if serial == self.searcher.latest:
            self.report_error(self.tr("The search failed: {0}").format(message), details)
            self.search_finished.emit(0)

    # -- asking ------------------------------------------------------------------------------

    def ask(self) -> None:
        """Ask: an answer from the passages, written by the chat model, beside the results."""
        question = self.search_bar.query()
        if not question:
            self.search_field.setFocus()
            self.status_label.setText(self.tr("Type a question first, then press Ask."))
            return
        settings = self.config.chat_settings()
        if settings is None:
            self.report_error(self.tr(
                "No chat model is chosen for Ask: choose one in Tools › Choose Model… "
                "(Chat models), such as Mistral 7B Instruct."), model=True)
            return
        if self._engine is None:
            self._show_message(self.tr("The model is still loading; ask again in a moment."))
            return
        self._answer_serial += 1
        self._question = question
        self.answer_panel.start(question)
        self.answerer.ask(self._answer_serial, question, self.search_bar.filters(), settings)
        self.run_search()  # the passages, ranked, below the answer

    def stop_answer(self) -> None:
        self.answerer.cancel()

    def _current(self, serial: int) -> bool:
        return serial == self._answer_serial and self.answer_panel.isVisible()

    def _answer_loading(self, serial: int) -> None:
        if self._current(serial):
            self.answer_panel.loading()

    def _answer_sources(self, serial: int, sources: list) -> None:
        if self._current(serial):
            self.answer_panel.set_sources(sources)

    def _answer_text(self, serial: int, text: str) -> None:
        if self._current(serial):
            self.answer_panel.add_text(text)

    def _answer_cited(self, serial: int, n: int) -> None:
        if self._current(serial):
            self.answer_panel.add_citation(n)

    def _answer_refused(self, serial: int, reason: str, before_model: bool) -> None:
        if self._current(serial):
            self.answer_panel.refuse(reason, before_model)

    def _answer_finished(self, serial: int, done: Any) -> None:
        if self._current(serial):
            self.answer_panel.finish(done.cited, done.removed, done.stopped, done.timings)
            self.answer_finished.emit(done)

    def _answer_failed(self, serial: int, message: str, details: str) -> None:
        if self._current(serial):
            self.answer_panel.fail(message)
            self.report_error(self.tr("Could not answer: {0}").format(message), details)

    def _citation_clicked(self, n: int) -> None:
        source = self.answer_panel.sources.get(n)
        if source is None:
            return
        self.preview.show_passage(source.path, source.page, source.start, source.end,
                                  source.text, source.kind, query=self._question)

    def _result_selected(self, current: Any, _previous: Any) -> None:
        hit: Hit | None = current.data(HIT_ROLE) if current.isValid() else None
        if hit is None:
            return
        self.preview.show_passage(hit.path, hit.page, hit.start, hit.end, hit.text, hit.kind,
                                  query=self.results.query, ocr_lines=hit.ocr_lines)

    def _message_link(self, link: str) -> None:
        if link == "add-folder":
            self.choose_folder()

    def _show_message(self, html: str, welcome: bool = False) -> None:
        self._ready_page_shown = False
        self.message.setText(html)
        if self.message.property("welcome") != welcome:
            self.message.setProperty("welcome", welcome)
            self.message.style().unpolish(self.message)
            self.message.style().polish(self.message)
        self.results_stack.setCurrentWidget(self.message)

    def _show_results_page(self, no_results_for: str | None = None) -> None:
        if no_results_for:
            self._show_message(self.tr("<h3>Nothing found</h3><p>No passage matches "
                                       "<i>{0}</i>. Try other words, or another mode or "
                                       "filter.</p>").format(_esc(no_results_for)))
            return
        if self.results.rowCount():
            self.results_stack.setCurrentWidget(self.results_view)
            return
        if not self._status.get("folders"):
            self._show_message(self.tr(
                "<h2>Welcome to Semdex</h2>"
                "<p style='font-size:large'>Drag a folder here to search it by meaning.</p>"
                "<p>Semdex reads the documents in the folders you give it (PDF, Word, "
                "Markdown, text, web pages and code), and finds passages by what they mean, "
                "not only by the words they use.</p>"
                "<p>Everything stays on this computer: the model runs here and nothing is "
                "sent anywhere.</p><p><a href='add-folder'>Choose a folder…</a></p>"),
                welcome=True)
        else:
            files, passages = self.library.totals()
            self._show_message(self.tr(
                "<h3>Type to search</h3><p>{0:,} passages from {1:,} files are ready. "
                "Ask a question or describe what you are looking for.</p>").format(
                passages, files))
            self._ready_page_shown = True

    # -- dialogs -----------------------------------------------------------------------------

    def choose_model(self) -> None:
        from desktop.gui.model_picker import ModelPickerDialog

        current = str(self._engine.model.path) if self._engine else None
        dialog = ModelPickerDialog(self.config, current, self)
        dialog.model_chosen.connect(self.switch_model)
        dialog.chat_model_chosen.connect(self._chat_model_chosen)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.model_dialog = dialog

    def _chat_model_chosen(self, path: str) -> None:
        self.config.chat_model = path  # (the picker saved it in config.json)
        self.status_label.setText(self.tr("Ask writes its answers with {0}.").format(
            os.path.basename(path)))

    def switch_model(self, path: str, family: str = "") -> None:
        self.status_label.setText(self.tr("Loading {0}…").format(os.path.basename(path)))
        self.worker.switch_model(path, family or None)

    def open_settings(self) -> None:
        from desktop.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.config, self)
        dialog.settings_saved.connect(self.apply_config)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def apply_config(self, config: Config) -> None:
        old, self.config = self.config, config
        if config.data_dir != old.data_dir:
            QMessageBox.information(self, self.tr("Data folder"), self.tr(
                "The new data folder is used from the next start of Semdex."))
        self.worker.apply_settings(config.embedder_settings(), config.sync_settings(),
                                   config.excludes, config.extract_settings())
        self.search_bar.set_mode(config.search_mode)
        if self._engine is not None:
            self.search_bar.set_profile(self._engine.model.profile, config.task,
                                        config.custom_instruction)
        self.run_search()

    def show_log(self) -> None:
        from desktop.gui.log_view import LogView

        view = LogView(parent=self)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.show()

    def _about(self) -> None:
        from desktop import __version__

        QMessageBox.about(self, self.tr("About Semdex"), self.tr(
            "<b>Semdex {0}</b><p>Search your own files by meaning, privately.</p>"
            "<p>Data folder: {1}</p>").format(__version__, _esc(str(self.data_dir))))

    # -- errors: the one path to the person --------------------------------------------------

    def report_error(self, message: str, details: str = "", *, model: bool = False) -> None:
        log.warning("shown to the person: %s", message)
        self._errors.append((message, details))
        del self._errors[:-50]
        self.banner.label.setText(message)
        self.banner.model_button.setVisible(model)
        self.banner.show()

    def report_model_error(self, message: str, details: str = "") -> None:
        """The model could not be used (refused, or it crashed llama.cpp in its trial load):
        the banner offers the way out, another model."""
        self.report_error(message, details, model=True)

    def errors(self) -> list[tuple[str, str]]:
        return list(self._errors)

    def _show_error_details(self) -> None:
        if not self._errors:
            return
        message, details = self._errors[-1]
        box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Semdex"), message,
                          QMessageBox.StandardButton.Close, self)
        box.setDetailedText(details or self.tr("See the log (Tools › Show Log…)."))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- quitting ----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        event.accept()

    def shutdown(self) -> bool:
        """Cancel, stop the worker's thread and wait for it (with a timeout). True if stopped."""
        if self._closing:
            return not self.worker_thread.isRunning()
        self._closing = True
        self._save_layout()
        self.searcher.shutdown()
        self.answerer.cancel()
        QMetaObject.invokeMethod(self.answerer, "shutdown",
                                 Qt.ConnectionType.BlockingQueuedConnection)  # frees the model
        self.answer_thread.quit()
        if not self.answer_thread.wait(QUIT_TIMEOUT_MS):
            log.error("the answering thread did not stop within %d s", QUIT_TIMEOUT_MS // 1000)
        self.worker.stop()
        self.worker_thread.quit()
        stopped = self.worker_thread.wait(QUIT_TIMEOUT_MS)
        if not stopped:
            log.error("the indexing thread did not stop within %d s", QUIT_TIMEOUT_MS // 1000)
        return stopped


def _esc(text: str) -> str:
    import html

    return html.escape(text)
