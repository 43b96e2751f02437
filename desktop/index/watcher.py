"""Watch folders with watchdog; the observer thread only records which paths changed.

Nothing is read or indexed on the observer's thread: each event just marks its path (both
ends of a move) dirty with a timestamp. The single writer drains paths that have been quiet for
a moment, which debounces editors' save patterns (write a temp file, rename it over the
original, several writes in a row) and waits out a file that is still being written.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from desktop.index.scan import is_excluded_name, is_under, is_venv

log = logging.getLogger(__name__)


def _not_stop_noise(record: logging.LogRecord) -> bool:
    # watchdog logs this as an error when a folder's watches are stopped while an event is
    # being read; nothing is wrong, and the person should not be told otherwise
    return "called when the thread is inactive" not in record.getMessage()



_watchers: weakref.WeakSet[FolderWatcher] = weakref.WeakSet()  # started, not yet stopped
_watchers_lock = threading.Lock()  # (read on watchdog's threads, changed on the writer's)


def _events_lost(record: logging.LogRecord) -> bool:
    # When a burst of changes overflows the kernel's inotify queue, watchdog sets its watches
    # up again but tells its handlers nothing, only its log: whatever changed in the lost
    # events would never be indexed. Every watched folder is then looked at again in full.
    if "overflow" in record.getMessage():
        with _watchers_lock:
            watchers = list(_watchers)
        for watcher in watchers:
            watcher.events_lost()
    return True


def _hook_watchdog_logs() -> None:
    """Listen to watchdog's log (once, when the first watcher starts, not on import: importing
    a module must not change the process's logging)."""
    if getattr(_hook_watchdog_logs, "done", False):
        return
    logging.getLogger("watchdog.observers.inotify").addFilter(_not_stop_noise)
    inotify_log = logging.getLogger("watchdog.observers.inotify_c")
    inotify_log.setLevel(logging.WARNING)  # the filter must run whatever the root level is
    inotify_log.addFilter(_events_lost)
    # ...and it warns when a moved folder's watch collides with its old one: the watches are
    # renewed after folders move (Syncer), so it tells the person nothing they could act on.
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning,
                            module="watchdog")
    _hook_watchdog_logs.done = True  # type: ignore[attr-defined]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            # Sent for the parent of every file created, deleted or moved, whose own event
            # names the file: marking the folder too would rescan its whole subtree each time.
            return
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        # A folder moved (or moved away, which reads as deleted) leaves watchdog's inotify
        # bookkeeping behind: events inside it may come with its old path, or stop coming once
        # it moves again. Its watches are then renewed (see FolderWatcher.renew).
        moved_dir = event.is_directory and event.event_type in ("moved", "deleted")
        self.watcher.mark((os.fsdecode(p) for p in paths), moved_dir=moved_dir)


FALLBACK_POLL_SECONDS = 10.0  # a folder the system cannot watch is walked this often


class FolderWatcher:
    """Dirty paths under the watched roots, with the time of their last event."""

    def __init__(self, roots: Iterable[str], excludes: Iterable[str] = (),
                 polling: bool = False, poll_interval: float = 1.0):
        self.roots = [os.path.abspath(r) for r in roots]
        self.excludes = tuple(excludes)
        self.polling = polling
        self.poll_interval = poll_interval
        self._observers: list[BaseObserver] = []
        self._dirty: dict[str, tuple[float, float]] = {}  # path -> (first, last) event time
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._handler = _Handler(self)
        self._stale = False  # a folder moved: the watches no longer match the tree
        self.polled: dict[str, str] = {}  # folder -> why the system could not watch it

    def events_lost(self) -> None:
        """Change events were dropped (the kernel's queue overflowed): every folder is marked
        changed, so the next sync walks it all and finds what the lost events would have
        said."""
        log.warning("change events were lost; looking at every watched folder again")
        self.mark(r for r in self.roots if os.path.isdir(r))

    def _poller(self, interval: float) -> BaseObserver:
        return PollingObserverVFS(os.lstat, self._listdir, polling_interval=interval)

    def start(self) -> None:
        _hook_watchdog_logs()
        # One observer per folder: watchdog's inotify observer keeps one descriptor for all
        # its folders, so a directory moved from one watched folder to another shares a watch
        # between them and loses it. Separate observers keep separate descriptors.
        self._observers = []
        for root in self.roots:
            observer: BaseObserver | None = None
            try:  # (watchdog opens the inotify descriptor when the observer is made)
                observer = self._poller(self.poll_interval) if self.polling else Observer()
                if os.path.isdir(root):  # (a folder deleted while watched is not watched again)
                    observer.schedule(self._handler, root, recursive=True)
                observer.start()
            except OSError as exc:
                if self.polling:
                    raise
                if observer is not None:  # its descriptor and reader thread are let go
                    observer.stop()
                # inotify's limits (fs.inotify.max_user_watches, one watch per folder, or
                # max_user_instances): the folder is still kept in sync, by walking it.
                log.warning("the system cannot watch %s (%s); it is checked every %.0f s "
                            "instead (on Linux, raise fs.inotify.max_user_watches)",
                            root, exc.strerror or exc, FALLBACK_POLL_SECONDS)
                self.polled[root] = exc.strerror or str(exc)
                observer = self._poller(FALLBACK_POLL_SECONDS)
                observer.schedule(self._handler, root, recursive=True)
                observer.start()
            self._observers.append(observer)
        with _watchers_lock:
            _watchers.add(self)

    @property
    def stale(self) -> bool:
        """Whether a folder moved since the watches were set up (renew() them, then rescan:
        changes inside moved folders may have been reported under the wrong path)."""
        return self._stale

    def renew(self) -> None:
        """Set up every watch afresh. Changes made meanwhile are not reported: the caller
        rescans the folders after this."""
        self._stale = False  # (before: a folder moved while the watches are renewed counts)
        self.stop()
        try:
            self.start()
        except BaseException:
            self._stale = True  # tried again at the next sync
            raise

    def stop(self) -> None:
        with _watchers_lock:
            _watchers.discard(self)
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            if observer.is_alive():
                observer.join(timeout=5)

    def _listdir(self, path: str | None) -> Iterator[os.DirEntry]:
        """What the polling observer walks: links are not followed (os.lstat), so a symlink
        loop cannot send it round forever, and excluded folders (.git, node_modules, virtual
        environments...) are not walked at every poll."""
        with os.scandir(path) as it:
            entries = list(it)
        for entry in entries:
            if is_excluded_name(entry.name, self.excludes):
                continue
            try:
                if entry.is_dir(follow_symlinks=False) and is_venv(entry.path):
                    continue
            except OSError:
                pass
            yield entry

    @property
    def live(self) -> bool:
        return bool(self._observers) and all(o.is_alive() for o in self._observers)

    def _excluded(self, path: str) -> bool:
        """Cheap, from the path alone (the indexer has the last word, virtual environments
        included): an excluded name on the way, or a path pattern (those hold a separator)."""
        for root in self.roots:
            if is_under(path, root):
                rel = os.path.relpath(path, root)
                return any(is_excluded_name(part, self.excludes)
                           for part in rel.split(os.sep) if part != ".") or any(
                    fnmatch.fnmatch(path, p) for p in self.excludes if os.sep in p)
        return True

    def mark(self, paths: Iterable[str], moved_dir: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            for p in paths:
                if not self._excluded(p):
                    first = self._dirty.get(p, (now, now))[0]
                    self._dirty[p] = (first, now)
                    # polling compares snapshots: it keeps no per-folder state to go stale
                    self._stale = self._stale or (moved_dir and not self.polling)
        self._event.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._dirty)

    def wait(self, timeout: float) -> bool:
        """Block until an event arrives (or the timeout passes)."""
        got = self._event.wait(timeout)
        self._event.clear()
        return got

    def _ready(self, first: float, last: float, now: float, quiet: float,
               max_wait: float) -> bool:
        return now - last >= quiet or now - first >= max_wait

    def drain(self, quiet: float, max_wait: float = 10.0) -> set[str]:
        """Paths quiet for `quiet` seconds (or dirty for `max_wait`); they leave the set."""
        now = time.monotonic()
        with self._lock:
            ready = {p for p, (first, last) in self._dirty.items()
                     if self._ready(first, last, now, quiet, max_wait)}
            for p in ready:
                del self._dirty[p]
        return ready

    def next_ready_in(self, quiet: float, max_wait: float = 10.0) -> float | None:
        """Seconds until some dirty path becomes ready; None when nothing is dirty."""
        now = time.monotonic()
        with self._lock:
            if not self._dirty:
                return None
            return max(0.0, min(min(last + quiet, first + max_wait) - now
                                for first, last in self._dirty.values()))
