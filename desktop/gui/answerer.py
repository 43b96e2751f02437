"""The window's answerer: the chat model, on a thread of its own, writing one answer at a time.

`Answerer` lives on its own QThread and owns the chat model: loaded at the first question
(after the retrieval gate let it through), unloaded after it has been idle for
IDLE_UNLOAD_S. The core's `answer()` runs there; its events come to the GUI as signals, the
answer's text in pieces at most every FLUSH_S (a repaint per token would keep the GUI thread
busy for nothing), and while an answer is written indexing waits between two decodes
(`Embedder.yielding`). Stop sets an event the core checks on every token and inside prompt
processing, so it takes effect at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop.ask import answer as ask
from desktop.ask.chat_model import ChatModel, ChatSettings
from desktop.logs import error_details
from desktop.search.query import NO_FILTER, Filters

log = logging.getLogger(__name__)

FLUSH_S = 0.075  # the answer's text reaches the window in pieces this far apart, at most
IDLE_UNLOAD_S = 600.0  # a chat model unused this long is unloaded (its memory given back)


class Answerer(QObject):
    """Answers questions on its own thread; its signals carry the question's serial."""

    requested = Signal(int, str, object, object)  # serial, question, Filters, ChatSettings
    loading = Signal(int)  # the chat model is being loaded for this question
    sources_arrived = Signal(int, list)  # [prompt.Source]
    text_arrived = Signal(int, str)  # more of the answer (citations already checked)
    cited = Signal(int, int)  # a passage number cited for the first time
    refused = Signal(int, str, bool)  # why, whether before the model was asked
    finished = Signal(int, object)  # answer.Done
    failed = Signal(int, str, str)  # message, details

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.engine = None  # the window's search engine (set from the GUI thread)
        self._chat: ChatModel | None = None
        self._cancel = threading.Event()
        self._latest = 0  # the newest question asked
        self._stopped = 0  # questions up to this one were stopped
        self._timer: QTimer | None = None
        self.requested.connect(self._answer)

    def set_engine(self, engine) -> None:
        self.engine = engine

    def ask(self, serial: int, question: str, filters: Filters | None,
            settings: ChatSettings) -> None:
        """From the GUI thread: answer this (any answer still being written is stopped)."""
        self._latest = serial
        self._cancel.set()
        self.requested.emit(serial, question, filters or NO_FILTER, settings)

    def cancel(self) -> None:
        """From any thread: stop the answer being written, at once (and one not yet begun)."""
        self._stopped = self._latest
        self._cancel.set()

    @property
    def chat_loaded(self) -> bool:
        return self._chat is not None

    # -- the answerer's thread ---------------------------------------------------------------

    @Slot(int, str, object, object)
    def _answer(self, serial: int, question: str, filters: Filters,
                settings: ChatSettings) -> None:
        if serial != self._latest or serial <= self._stopped:
            return  # a newer question came in, or Stop was pressed, before this one began
        self._cancel = cancel = threading.Event()
        if serial <= self._stopped:  # (Stop pressed just now)
            cancel.set()
        engine = self.engine
        if engine is None:
            self.failed.emit(serial, self.tr("The index is not open yet"), "")
            return

        def load() -> ChatModel:
            if self._chat is not None and self._chat.settings != settings:
                self._chat.close()
                self._chat = None
            if self._chat is None:
                self.loading.emit(serial)
                self._chat = ChatModel(settings)
            return self._chat

        chat = self._chat if self._chat is not None and self._chat.settings == settings else load
        pending: list[str] = []
        last = time.monotonic()
        hold = getattr(engine.embedder, "yielding", None)
        try:
            with hold() if hold else contextlib.nullcontext():
                for event in ask.answer(question, engine, chat, filters=filters,
                                        cancel=cancel):
                    if isinstance(event, ask.Token):
                        pending.append(event.text)
                        now = time.monotonic()
                        if now - last >= FLUSH_S:
                            self.text_arrived.emit(serial, "".join(pending))
                            pending.clear()
                            last = now
                        continue
                    if pending:
                        self.text_arrived.emit(serial, "".join(pending))
                        pending.clear()
                    if isinstance(event, ask.Sources):
                        self.sources_arrived.emit(serial, list(event.passages))
                    elif isinstance(event, ask.Citation):
                        self.cited.emit(serial, event.n)
                    elif isinstance(event, ask.Refusal):
                        self.refused.emit(serial, event.reason, event.before_model)
                    elif isinstance(event, ask.Done):
                        self.finished.emit(serial, event)
                    elif isinstance(event, ask.Error):
                        self.failed.emit(serial, event.message, "")
        except Exception as exc:  # noqa: BLE001 - shown in the window's banner
            log.exception("answering failed")
            self.failed.emit(serial, str(exc), error_details(exc))
        self._arm_unload()

    def _arm_unload(self) -> None:
        if self._timer is None:
            self._timer = QTimer(self)
            self._timer.setSingleShot(True)
            self._timer.timeout.connect(self._unload_if_idle)
        self._timer.start(int(IDLE_UNLOAD_S * 1000))

    @Slot()
    def _unload_if_idle(self) -> None:
        chat = self._chat
        if chat is not None and time.monotonic() - chat.last_used >= IDLE_UNLOAD_S - 1:
            log.info("chat model %s unloaded after %.0f minutes unused", chat.path.name,
                     IDLE_UNLOAD_S / 60)
            self._chat = None
            chat.close()

    @Slot()
    def shutdown(self) -> None:
        """On the answerer's thread, at quit: the model is freed there."""
        self._cancel.set()
        if self._timer is not None:
            self._timer.stop()
        chat, self._chat = self._chat, None
        if chat is not None:
            chat.close()
