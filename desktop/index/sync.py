"""Keep the index in sync with folders until told to stop: what `semdex watch` and the GUI run.

The watcher is started before the start-up scan, so nothing that changes during the scan is
missed; the scan then catches up with whatever changed while Semdex was closed. After that the
single writer (this loop, holding the data dir's writer lock) drains the paths the watcher
marked, once they have been quiet for a moment, and syncs just those paths. The full-text index
is refreshed and old versions are cleaned up when the folders have been idle for a while, so
the store does not grow without bound.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from desktop.engine import Engine
from desktop.index.indexer import Progress
from desktop.index.lock import WriterLock
from desktop.index.watcher import FolderWatcher

log = logging.getLogger(__name__)


@dataclass
class SyncSettings:
    quiet: float = 0.3  # seconds a path must be still before it is indexed
    max_wait: float = 10.0  # ...but a file that never stops changing is indexed after this
    polling: bool = False  # for file systems where change events do not arrive
    poll_interval: float = 1.0
    optimize_after_idle: float = 20.0  # seconds of calm before compaction and FTS refresh
    heartbeat: float = 2.0
    retry_first: float = 2.0  # a failed sync is tried again after this, then twice as long
    retry_max: float = 300.0  # ...up to this (a full disk, a store that cannot be written)
    rescan_every: float = 600.0  # seconds between walks of every folder: a safety net for
    # changes no event told of (a subfolder past the inotify watch limit, a network drive)


class Backoff:
    """Trying again after failures in a row: `first` seconds after the first, twice as long
    after each further one, at most `limit`; a success starts over."""

    def __init__(self, first: float, limit: float):
        self.first, self.limit = first, limit
        self.failures = 0
        self.until = 0.0  # no try before this (time.monotonic())

    @property
    def delay(self) -> float:
        """The wait the failures so far call for (none before the first)."""
        if not self.failures:
            return 0.0
        return min(self.limit, self.first * 2 ** min(self.failures - 1, 32))

    def failed(self, now: float) -> float:
        """Count a failure and put the next try off; returns for how long."""
        self.failures += 1
        self.until = now + self.delay
        return self.delay

    def ready(self, now: float) -> bool:
        return now >= self.until

    def reset(self) -> None:
        self.failures, self.until = 0, 0.0


class _Compaction:
    """Compaction and the full-text refresh, due once the folders were calm for `calm`
    seconds after a write. A failure puts it off: twice the calm, then twice that, up to 256
    times the calm (writes meanwhile wait as long)."""

    def __init__(self, calm: float):
        self.calm = calm
        self.backoff = Backoff(2 * calm, 2 ** 8 * calm)
        self.due_at: float | None = None  # None: nothing written since the last compaction

    def wrote(self, now: float) -> None:
        self.due_at = now + max(self.calm, self.backoff.delay)

    def due(self, now: float) -> bool:
        return self.due_at is not None and now >= self.due_at

    def failed(self, now: float) -> None:
        self.due_at = now + self.backoff.failed(now)

    def done(self) -> None:
        self.due_at = None
        self.backoff.reset()


class _Every:
    """A chore done every `interval` seconds."""

    def __init__(self, interval: float):
        self.interval = interval
        self.last = time.monotonic()

    def due(self, now: float) -> bool:
        """Whether it is time; if so, the next interval starts now."""
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


class Syncer:
    """Owns the watcher and the writing for one data dir, under the engine's writer lock."""

    def __init__(self, engine: Engine, roots: Sequence[str] | None = None,
                 settings: SyncSettings | None = None, excludes: Sequence[str] = ()):
        self.engine = engine
        self.settings = settings or SyncSettings()
        self.excludes = tuple(excludes)
        self.roots = list(roots) if roots else []
        self.lock: WriterLock | None = None  # the engine's, while run() runs
        self.watcher: FolderWatcher | None = None
        self.idle = threading.Event()  # set while nothing is pending
        self.syncs = 0
        self.renewals = 0  # times the watches were set up again after folders moved

    def run(self, cancel: threading.Event,
            on_progress: Callable[[Progress], None] | None = None,
            on_error: Callable[[Exception, float], None] | None = None) -> None:
        """Catch up, then keep the folders in sync until `cancel` is set.

        A failing start-up catch-up raises. Once watching, a sync that fails (the disk is full,
        the store cannot be written) does not end the loop: its paths stay pending and are
        tried again after a back-off; `on_error(exc, retry_in_seconds)` is told each time.
        """
        report = on_progress or (lambda p: None)
        self._on_error = on_error or (lambda exc, delay: None)
        with self.engine.writing("watch") as self.lock:
            try:
                roots = self.engine.add_folders(self.roots)
                self.watcher = FolderWatcher(roots, (*self.excludes, self.engine.own_files),
                                             self.settings.polling, self.settings.poll_interval)
                self.watcher.start()
                self.lock.touch(pending=0, live=self.watcher.live)
                for prog in self.engine.index(roots, cancel=cancel, excludes=self.excludes):
                    report(prog)
                self._loop(roots, cancel, report)
            finally:
                if self.watcher is not None:
                    self.watcher.stop()
                self.lock = None

    def _loop(self, roots: list[str], cancel: threading.Event,
              report: Callable[[Progress], None]) -> None:
        s = self.settings
        watcher = self.watcher
        assert watcher is not None
        heartbeat, rescan = _Every(s.heartbeat), _Every(s.rescan_every)
        retry = Backoff(s.retry_first, s.retry_max)  # after a failed sync
        compaction = _Compaction(s.optimize_after_idle)
        while not cancel.is_set():
            self._wait(watcher, retry)
            now = time.monotonic()
            if heartbeat.due(now):
                self._note_state(watcher)
            if rescan.due(now):
                watcher.mark(r for r in roots if os.path.isdir(r))
            if watcher.pending():
                # Cleared before the drain: once a path leaves the dirty set, idle must not
                # read as set until it is indexed (a path marked later is never ready at once).
                self.idle.clear()
            if not retry.ready(now):
                continue
            paths = watcher.drain(s.quiet, s.max_wait)
            if not paths:
                if compaction.due(now):
                    self._compact(compaction)
                continue
            try:
                if retry.failures:  # what the failed try half-wrote goes before it is redone
                    self.engine.store.purge_orphans()
                wrote = self._sync(roots, paths, cancel, report)
            except Exception as exc:
                self._sync_failed(watcher, paths, exc, retry)
                continue
            if wrote:
                compaction.wrote(time.monotonic())
            retry.reset()
            if not watcher.pending():
                self.idle.set()

    def _wait(self, watcher: FolderWatcher, retry: Backoff) -> None:
        """Until a marked path is ready (and a retry is due), a heartbeat at most."""
        s = self.settings
        wait = watcher.next_ready_in(s.quiet, s.max_wait)
        if wait is None:
            self.idle.set()
        elif retry.failures:  # backing off after a failed sync: its paths wait in the watcher
            wait = max(wait, retry.until - time.monotonic())
        watcher.wait(min(s.heartbeat, wait if wait is not None else s.heartbeat))

    def _note_state(self, watcher: FolderWatcher) -> None:
        """The heartbeat: what `semdex status` shows of the watcher, in the lock file."""
        try:
            assert self.lock is not None
            self.lock.touch(pending=watcher.pending(), live=watcher.live)
        except OSError as exc:  # only what `status` shows of the watcher: go on
            log.warning("could not note the watcher's state: %s", exc)

    def _sync_failed(self, watcher: FolderWatcher, paths: set[str], exc: Exception,
                     retry: Backoff) -> None:
        # Search never shows half-written passages (they are written before their file row,
        # stale ones deleted after): the paths are tried again later, after the orphans of
        # this try are purged.
        watcher.mark(paths)
        delay = retry.failed(time.monotonic())
        log.error("sync failed, trying again in %.0f s: %s", delay, exc, exc_info=exc)
        self._on_error(exc, delay)

    def _compact(self, compaction: _Compaction) -> None:
        try:
            self.engine.store.optimize()
        except Exception as exc:  # housekeeping: tried again after longer calm
            compaction.failed(time.monotonic())
            log.warning("could not compact the index: %s", exc,
                        exc_info=compaction.backoff.failures == 1)
        else:
            compaction.done()

    def _sync(self, roots: list[str], paths: set[str], cancel: threading.Event,
              report: Callable[[Progress], None]) -> bool:
        """Sync the paths (and catch up after moved folders); whether anything was written."""
        watcher = self.watcher
        assert watcher is not None
        wrote = False
        for prog in self.engine.index(roots, cancel=cancel, excludes=self.excludes,
                                      scope=paths, optimize=False):
            report(prog)
            wrote = wrote or bool(prog.files_done or prog.files_removed)
        self.syncs += 1
        if watcher.stale and not cancel.is_set():
            # A folder moved: watchdog may now report changes inside it under its old path,
            # or not at all. Fresh watches, then one scan for what they missed.
            watcher.renew()
            present = [r for r in roots if os.path.isdir(r)]
            for prog in self.engine.index(present, cancel=cancel, excludes=self.excludes,
                                          optimize=False) if present else ():
                report(prog)
                wrote = wrote or bool(prog.files_done or prog.files_removed)
            self.renewals += 1
        return wrote
