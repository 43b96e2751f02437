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


class Syncer:
    """Owns the writer lock, the watcher and the writing for one data dir."""

    def __init__(self, engine: Engine, roots: Sequence[str] | None = None,
                 settings: SyncSettings | None = None, excludes: Sequence[str] = ()):
        self.engine = engine
        self.settings = settings or SyncSettings()
        self.excludes = tuple(excludes)
        self.roots = list(roots) if roots else []
        self.lock = WriterLock(engine.data_dir, "watch")
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
        self.lock.acquire()
        try:
            roots = self.engine.prepare_roots(self.roots)
            self.watcher = FolderWatcher(roots, (*self.excludes, self.engine.own_files),
                                         self.settings.polling, self.settings.poll_interval)
            self.watcher.start()
            self.lock.touch(pending=0, live=self.watcher.live)
            for prog in self.engine.index(roots, cancel=cancel, excludes=self.excludes,
                                          lock=self.lock):
                report(prog)
            self._loop(roots, cancel, report)
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            self.lock.release()

    def _loop(self, roots: list[str], cancel: threading.Event,
              report: Callable[[Progress], None]) -> None:
        s = self.settings
        watcher = self.watcher
        assert watcher is not None
        dirty_since_optimize = False
        last_write = last_beat = time.monotonic()
        failures, retry_at, optimize_failures = 0, 0.0, 0
        last_rescan = time.monotonic()
        while not cancel.is_set():
            wait = watcher.next_ready_in(s.quiet, s.max_wait)
            if wait is None:
                self.idle.set()
            elif retry_at:  # backing off after a failed sync: its paths wait in the watcher
                wait = max(wait, retry_at - time.monotonic())
            watcher.wait(min(s.heartbeat, wait if wait is not None else s.heartbeat))
            now = time.monotonic()
            if now - last_beat >= s.heartbeat:
                try:
                    self.lock.touch(pending=watcher.pending(), live=watcher.live)
                except OSError as exc:  # only what `status` shows of the watcher: go on
                    log.warning("could not note the watcher's state: %s", exc)
                last_beat = now
            if now - last_rescan >= s.rescan_every:
                watcher.mark(r for r in roots if os.path.isdir(r))
                last_rescan = now
            if watcher.pending():
                # Cleared before the drain: once a path leaves the dirty set, idle must not
                # read as set until it is indexed (a path marked later is never ready at once).
                self.idle.clear()
            if now < retry_at:
                continue
            paths = watcher.drain(s.quiet, s.max_wait)
            try:
                if paths:
                    if failures:  # what the failed try half-wrote goes before it is redone
                        self.engine.store.purge_orphans()
                    if self._sync(roots, paths, cancel, report):
                        dirty_since_optimize = True
                        last_write = time.monotonic()
                elif (dirty_since_optimize and now - last_write
                      >= s.optimize_after_idle * 2 ** min(optimize_failures, 8)):
                    try:
                        self.engine.store.optimize()
                    except Exception as exc:  # housekeeping: tried again after longer calm
                        optimize_failures += 1
                        log.warning("could not compact the index: %s", exc,
                                    exc_info=optimize_failures == 1)
                        last_write = time.monotonic()
                    else:
                        dirty_since_optimize, optimize_failures = False, 0
            except Exception as exc:
                # Search never shows half-written passages (they are written before their file
                # row, stale ones deleted after): the paths are tried again later, after the
                # orphans of this try are purged.
                watcher.mark(paths)
                failures += 1
                delay = min(s.retry_max, s.retry_first * 2 ** (failures - 1))
                retry_at = time.monotonic() + delay
                log.error("sync failed, trying again in %.0f s: %s", delay, exc, exc_info=exc)
                self._on_error(exc, delay)
                continue
            if paths:
                failures, retry_at = 0, 0.0
                if not watcher.pending():
                    self.idle.set()

    def _sync(self, roots: list[str], paths: set[str], cancel: threading.Event,
              report: Callable[[Progress], None]) -> bool:
        """Sync the paths (and catch up after moved folders); whether anything was written."""
        watcher = self.watcher
        assert watcher is not None
        wrote = False
        for prog in self.engine.index(roots, cancel=cancel, excludes=self.excludes,
                                      scope=paths, optimize=False, lock=self.lock):
            report(prog)
            wrote = wrote or bool(prog.files_done or prog.files_removed)
        self.syncs += 1
        if watcher.stale and not cancel.is_set():
            # A folder moved: watchdog may now report changes inside it under its old path,
            # or not at all. Fresh watches, then one scan for what they missed.
            watcher.renew()
            present = [r for r in roots if os.path.isdir(r)]
            for prog in self.engine.index(present, cancel=cancel, excludes=self.excludes,
                                          optimize=False, lock=self.lock) if present else ():
                report(prog)
                wrote = wrote or bool(prog.files_done or prog.files_removed)
            self.renewals += 1
        return wrote
