"""Watch folders with watchdog; the observer thread only records which paths changed.

Nothing is read or indexed on the observer's thread: each event just marks its path (both
ends of a move) dirty with a timestamp. The single writer drains paths that have been quiet for
a moment, which debounces editors' save patterns (write a temp file, rename it over the
original, several writes in a row) and waits out a file that is still being written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from .scan import is_excluded_name, is_under

log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        self.watcher.mark(os.fsdecode(p) for p in paths)


class FolderWatcher:
    """Dirty paths under the watched roots, with the time of their last event."""

    def __init__(self, roots: Iterable[str], excludes: Iterable[str] = (),
                 polling: bool = False, poll_interval: float = 1.0):
        self.roots = [os.path.abspath(r) for r in roots]
        self.excludes = tuple(excludes)
        self.polling = polling
        self._observer = (PollingObserver(timeout=poll_interval) if polling else Observer())
        self._dirty: dict[str, float] = {}
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._handler = _Handler(self)

    def start(self) -> None:
        for root in self.roots:
            self._observer.schedule(self._handler, root, recursive=True)
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    @property
    def live(self) -> bool:
        return self._observer.is_alive()

    def _excluded(self, path: str) -> bool:
        for root in self.roots:
            if is_under(path, root):
                rel = os.path.relpath(path, root)
                return any(is_excluded_name(part, self.excludes)
                           for part in rel.split(os.sep) if part != ".")
        return True

    def mark(self, paths: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for p in paths:
                if not self._excluded(p):
                    self._dirty[p] = now
        self._event.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._dirty)

    def wait(self, timeout: float) -> bool:
        """Block until an event arrives (or the timeout passes)."""
        got = self._event.wait(timeout)
        self._event.clear()
        return got

    def drain(self, quiet: float) -> set[str]:
        """Paths whose last event is at least `quiet` seconds old; they leave the dirty set."""
        cutoff = time.monotonic() - quiet
        with self._lock:
            ready = {p for p, t in self._dirty.items() if t <= cutoff}
            for p in ready:
                del self._dirty[p]
        return ready

    def next_ready_in(self, quiet: float) -> float | None:
        """Seconds until the oldest dirty path becomes ready; None when nothing is dirty."""
        with self._lock:
            if not self._dirty:
                return None
            oldest = min(self._dirty.values())
        return max(0.0, oldest + quiet - time.monotonic())
