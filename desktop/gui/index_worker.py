"""The window's writer: the background worker that owns the model and the index.

`IndexWorker` is the single long-lived owner of the Engine (the loaded model and the LanceDB
writer). Moved to its own QThread, its run() loops: apply what the window asked for (add or
remove a folder, pause, resume, switch model), then run the core's Syncer (catch up, then keep
the folders in sync) until the next request interrupts it. The Syncer blocks its thread for as
long as it watches, so requests travel through a thread-safe queue and interrupt the sync by
setting its cancel event, rather than as queued slot calls that would wait for the sync to end.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal, Slot

from desktop.engine import Engine
from desktop.extract.settings import ExtractSettings
from desktop.index.indexer import Progress
from desktop.index.lock import DataDirBusy
from desktop.index.sync import Syncer, SyncSettings
from desktop.logs import error_details
from desktop.models.embedder import EmbedderSettings
from desktop.models.gguf_info import ModelFileError
from desktop.models.profiles import NotAnEmbedder

log = logging.getLogger(__name__)

# What the worker is doing, as the window shows it.
LOADING, INDEXING, WATCHING, PAUSED, IDLE, BUSY, STOPPED, QUITTING = (
    "loading", "indexing", "watching", "paused", "idle", "busy", "stopped", "quitting")
RETRYING = "retrying"  # watching, but the last sync failed: it is tried again soon
_PROGRESS_EVERY = 0.1  # seconds between progress signals (phase changes go at once)
_COUNTS_EVERY = 2.0  # seconds between per-folder counts while a run indexes
_BUSY_RETRY = 5.0  # seconds before trying again when another process holds the writer lock


@dataclass
class _Request:
    apply: Callable[..., None]  # one of the worker's _do_* methods, run in its thread
    args: tuple = ()


class IndexWorker(QObject):
    """Owns the Engine; lives in its own QThread (start it with run())."""

    engine_changed = Signal(object)  # the Engine searches should use (again after a switch)
    model_switch_started = Signal(str)  # the new model's name: indexing with it has begun
    state_changed = Signal(str)  # LOADING, INDEXING, WATCHING, PAUSED, IDLE, BUSY, STOPPED
    progress_reported = Signal(object)  # desktop.index.indexer.Progress, at most every 0.1 s
    problem_found = Signal(str, str)  # path, reason: a file that failed or was skipped
    status_refreshed = Signal(dict)  # Engine.status()
    counts_refreshed = Signal(dict)  # Engine.folder_counts(), every few seconds while indexing
    folder_removed = Signal(str)
    failed = Signal(str, str)  # message for the person, details (a traceback) for the log view
    model_failed = Signal(str, str)  # the same, when the model file is what cannot be used
    finished = Signal()

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *,
                 model: str | None = None, family: str | None = None,
                 settings: EmbedderSettings | None = None,
                 sync_settings: SyncSettings | None = None, excludes: Sequence[str] = (),
                 extraction: ExtractSettings | None = None):
        super().__init__()
        self.data_dir = data_dir
        self.extraction = extraction or ExtractSettings()
        self._model, self._family = model, family
        self.settings = settings or EmbedderSettings()
        self.sync_settings = sync_settings or SyncSettings()
        self.excludes = tuple(excludes)
        self.engine: Engine | None = None  # the one indexing
        self.search_engine: Engine | None = None  # the one searches use (old during a switch)
        self.state = LOADING
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._stopping = threading.Event()  # set once, when the window quits
        self._paused = False
        self._quit = False
        self._busy_until = 0.0
        self._last_emit = 0.0
        self._last_counts = 0.0
        self._counted_files = -1
        self._last_sync_error = ""
        self._catching_up = False
        self._last_phase = ""

    # -- requests: called from the GUI thread ------------------------------------------------

    def _post(self, apply: Callable[..., None], *args: object) -> None:
        with self._lock:
            self._requests.put(_Request(apply, args))
            self._cancel.set()  # the sync stops at its next batch and the request is applied

    def add_folders(self, paths: Sequence[str]) -> None:
        self._post(self._do_add, [os.fspath(p) for p in paths])

    def remove_folder(self, path: str) -> None:
        self._post(self._do_remove, path)

    def pause(self) -> None:
        self._post(self._do_pause)

    def resume(self) -> None:
        self._post(self._do_resume)

    def switch_model(self, path: str, family: str | None = None) -> None:
        self._post(self._do_switch, path, family or None)

    def apply_settings(self, settings: EmbedderSettings, sync_settings: SyncSettings,
                       excludes: Sequence[str], extraction: ExtractSettings | None = None
                       ) -> None:
        self._post(self._do_settings, settings, sync_settings, tuple(excludes),
                   extraction or self.extraction)

    def refresh(self) -> None:
        self._post(self._do_refresh)

    def stop(self) -> None:
        """Ask run() to return: the sync is cancelled, the model closed, the lock released
        (a trial load under way is stopped too)."""
        self._quit = True
        self._stopping.set()
        self._post(self._do_quit)

    # -- the loop: runs in the worker's thread -----------------------------------------------

    @Slot()
    def run(self) -> None:
        try:
            self._open(self._model, self._family, self.settings)
            while not self._quit:
                self._apply_requests(block=self._must_wait())
                if self._quit:
                    break
                if not self._must_wait():
                    self._sync()
        except Exception as exc:  # a bug: report it, and end cleanly
            self._fail(self.tr("Indexing stopped because of an unexpected error"), exc)
        finally:
            self._set_state(QUITTING)
            for engine in {id(e): e for e in (self.engine, self.search_engine) if e}.values():
                try:
                    engine.close()
                except Exception:  # closing is best effort on the way out
                    log.exception("closing the engine failed")
            self.finished.emit()

    def _must_wait(self) -> bool:
        engine = self.engine
        return (self._quit or self._paused or engine is None or not engine.state.folders
                or time.monotonic() < self._busy_until)

    def _apply_requests(self, block: bool) -> None:
        timeout = None
        if block and self._busy_until:
            timeout = max(0.05, self._busy_until - time.monotonic())
        try:
            req = self._requests.get(block=block, timeout=timeout)
        except queue.Empty:
            return
        while True:
            try:
                req.apply(*req.args)
            except Exception as exc:
                self._fail(self.tr("Could not complete the request"), exc)
            try:
                req = self._requests.get_nowait()
            except queue.Empty:
                break
        if self._quit:
            return
        if self.engine is not None and not self.engine.state.folders:
            self._set_state(IDLE)

    def _sync(self) -> None:
        engine = self.engine
        assert engine is not None
        with self._lock:
            if not self._requests.empty():
                return  # a request came in meanwhile: apply it first
            self._cancel = cancel = threading.Event()
        self._last_phase = ""
        self._last_counts, self._counted_files = time.monotonic(), -1
        self._catching_up = True  # the Syncer starts with a run over every folder
        syncer = Syncer(engine, None, self.sync_settings, self.excludes)
        try:
            syncer.run(cancel, self._on_progress, self._on_sync_error)
        except DataDirBusy as exc:
            if not self._busy_until:  # told once; then tried again every few seconds
                self.failed.emit(str(exc), "")
            self._busy_until = time.monotonic() + _BUSY_RETRY
            self._set_state(BUSY)
            return
        except Exception as exc:
            self._paused = True
            self._set_state(STOPPED)
            self._fail(self.tr("Indexing stopped"), exc)
            return
        self._busy_until = 0.0
        if not self._quit:
            self._emit_status()
            if self._paused:
                self._set_state(PAUSED)

    def _on_progress(self, prog: Progress) -> None:
        """Called by the Syncer in this thread, between batches."""
        if prog.problem:
            self.problem_found.emit(*prog.problem)
        now = time.monotonic()
        changed = prog.phase != self._last_phase
        self._last_phase = prog.phase
        if (self._catching_up and prog.phase in ("scanning", "indexing", "finishing")
                or prog.phase == "indexing" and prog.files_total):
            # (not for a live sync that finds nothing to read: the periodic walk of every
            # folder, a deletion, would flash "Indexing" every time)
            self._set_state(INDEXING)
        if changed or now - self._last_emit >= _PROGRESS_EVERY:
            self._last_emit = now
            self.progress_reported.emit(replace(prog, problems=[]))
        if (prog.phase == "indexing" and now - self._last_counts >= _COUNTS_EVERY
                and prog.files_done != self._counted_files and self.engine is not None):
            self._last_counts, self._counted_files = now, prog.files_done
            try:  # the folders' counts grow as the run goes, not only when it ends
                self.counts_refreshed.emit(self.engine.folder_counts())
            except Exception as exc:  # only a live figure: the run goes on
                log.warning("could not count the indexed files: %s", exc)
        if prog.phase == "done":  # the engine has recorded the run: status is current
            self._index_finished(prog)

    def _on_sync_error(self, exc: Exception, retry_in: float) -> None:
        """A live sync failed; the Syncer keeps watching and tries it again. Said once per
        kind of failure (its type and errno: the text may hold a changing path)."""
        kind = f"{type(exc).__name__}:{getattr(exc, 'errno', '')}"
        if kind != self._last_sync_error:
            self._last_sync_error = kind
            details = error_details(exc)
            self.failed.emit(self.tr("Could not update the index ({0}); trying again").format(
                exc), details)
        self._set_state(RETRYING)  # neither "indexing" nor "up to date" during a back-off

    def _index_finished(self, prog: Progress | None) -> None:
        """Called in this thread when an indexing run (catch-up or live sync) has ended."""
        if prog is None or prog.phase != "done":
            return  # cancelled: the sync loop ends, _sync() reports
        self._last_sync_error = ""  # a later failure is news again
        self._catching_up = False
        if self.engine is not self.search_engine:
            self._swap_engine()
        if prog.files_done or prog.files_removed or self.state != WATCHING:
            self._emit_status()
        self._set_state(WATCHING)

    # -- requests: applied in the worker's thread --------------------------------------------

    def _do_add(self, paths: list[str]) -> None:
        if self.engine is None:
            raise RuntimeError(self.tr("no model is loaded: choose a model first"))
        self.engine.add_folders(paths)
        self._paused = False
        self._emit_status()

    def _do_remove(self, path: str) -> None:
        engine = self.engine
        if engine is None:
            return
        others = [self.search_engine.store] if self.search_engine not in (None, engine) else []
        engine.remove_folder(path, also=others)
        self.folder_removed.emit(path)
        self._emit_status()

    def _do_pause(self) -> None:
        self._paused = True
        self._set_state(PAUSED)

    def _do_resume(self) -> None:
        self._paused = False
        self._busy_until = 0.0
        self._last_sync_error = ""

    def _do_refresh(self) -> None:
        self._emit_status()

    def _do_quit(self) -> None:
        self._quit = True

    def _do_switch(self, path: str | None, family: str | None,
                   settings: EmbedderSettings | None = None) -> None:
        self._set_state(LOADING)
        try:
            engine = self._build(path, family, settings or self.settings)
        except Exception as exc:
            if self._quit:
                return
            self._fail(self.tr("Could not use the model {0}").format(path), exc)
            if self.engine is not None:
                self._set_state(PAUSED if self._paused else INDEXING)
            return
        if self.engine is not None and self.engine is not self.search_engine:
            self.engine.close()  # an earlier switch that never finished its first sync
        self.engine = engine
        if settings is not None:
            self.settings = settings
        if self.search_engine is None or not engine.state.folders:
            self._swap_engine()
        else:
            self.model_switch_started.emit(engine.model.info.name)

    def _do_settings(self, settings: EmbedderSettings, sync_settings: SyncSettings,
                     excludes: tuple[str, ...], extraction: ExtractSettings) -> None:
        self.sync_settings, self.excludes = sync_settings, excludes
        self.extraction = extraction  # (the next run's files)
        for engine in (self.engine, self.search_engine):
            if engine is not None:
                engine.extraction = extraction
        if settings != self.settings and self.engine is not None:
            m = self.engine.model
            self._do_switch(None if m.is_starter else str(m.path),
                            m.profile.family if not m.is_starter else None, settings)

    # -- helpers -----------------------------------------------------------------------------

    def _build(self, model: str | None, family: str | None,
               settings: EmbedderSettings) -> Engine:
        engine = Engine(self.data_dir, model, family, settings, extraction=self.extraction)
        try:
            engine.load_embedder(cancel=self._stopping)  # here, not in a search
            engine.store  # noqa: B018
        except BaseException:
            engine.close()
            raise
        return engine

    def _open(self, model: str | None, family: str | None, settings: EmbedderSettings) -> None:
        self._set_state(LOADING)
        try:
            self.engine = self._build(model, family, settings)
        except Exception as exc:
            if self._quit:  # the window closed while the model was being tried
                return
            self._set_state(STOPPED)
            self._fail(self.tr("The model could not be loaded; choose another one"), exc)
            return
        # What start-up loaded (Qt, LanceDB, llama.cpp, their modules and objects) lives as long
        # as the app: take it out of the garbage collector's sight, once. Otherwise each full
        # collection walks all of it while holding the GIL, 50-100 ms in which the window
        # cannot paint (bench/gui_responsiveness.py found them).
        gc.freeze()
        self._swap_engine()
        self._emit_status()
        self._set_state(IDLE if not self.engine.state.folders else INDEXING)

    def _swap_engine(self) -> None:
        """Searches move to the indexing engine: at start, or when a new model caught up."""
        engine = self.engine
        assert engine is not None
        old, self.search_engine = self.search_engine, engine
        if old is not None:
            engine.remember_model()
            # The old model stays loaded until its last search ends; then it is freed.
        self.engine_changed.emit(engine)

    def _emit_status(self) -> None:
        engine = self.engine
        if engine is None:
            return
        try:
            self.status_refreshed.emit(engine.status())
        except Exception as exc:
            self._fail(self.tr("Could not read the library's status"), exc)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _fail(self, message: str, exc: BaseException) -> None:
        log.error("%s: %s", message, exc, exc_info=exc)
        details = error_details(exc)
        if isinstance(exc, (ModelFileError, NotAnEmbedder)):
            self.model_failed.emit(f"{message}: {exc}", details)
        else:
            self.failed.emit(f"{message}: {exc}", details)
