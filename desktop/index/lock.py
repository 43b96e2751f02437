"""One writer per data dir, across processes.

An OS file lock (flock on POSIX, msvcrt on Windows) is held for as long as a process writes.
The kernel drops it when the process dies, even by kill -9, so a crash never leaves a stale
lock behind. Beside the lock, a small JSON note says who holds it and since when, so a second
process can tell the person what is going on (and `status` can say whether a watcher is live).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from desktop.atomic import write_atomic

LOCK_NAME = "writer.lock"
NOTE_NAME = "writer.json"
_TRIES = 5
_RETRY_PAUSE = 0.02


class DataDirBusy(Exception):
    """Another process is writing to this data dir."""

    def __init__(self, data_dir: Path | str, holder: dict[str, Any] | None):
        self.holder = holder or {}
        who = ""
        if self.holder:
            who = (f" (process {self.holder.get('pid')}, `semdex {self.holder.get('mode')}` "
                   f"since {time.strftime('%H:%M:%S', time.localtime(self.holder['since']))})"
                   if "since" in self.holder else f" (process {self.holder.get('pid')})")
        super().__init__(
            f"another Semdex process is updating {data_dir}{who}; search still works, "
            "indexing must wait until it stops")


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def read_holder(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / NOTE_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None


class WriterLock:
    """`with WriterLock(data_dir, "index"):` or acquire()/release()."""

    def __init__(self, data_dir: Path, mode: str, name: str | None = None):
        """name: the data dir as the person knows it, for the message (default: the folder)."""
        self.data_dir = Path(data_dir)
        self.mode = mode
        self.name = name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> WriterLock:
        if self._fd is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        # `status` and search probe the lock by taking it for an instant (writer_alive): a
        # few quick tries keep such a probe from being mistaken for another writer.
        for attempt in range(_TRIES):
            if _try_lock(fd):
                break
            if attempt + 1 < _TRIES:
                time.sleep(_RETRY_PAUSE)
        else:
            os.close(fd)
            raise DataDirBusy(self.name or self.data_dir, read_holder(self.data_dir))
        self._fd = fd
        self.touch()
        return self

    def touch(self, **extra: Any) -> None:
        """Refresh the note (a live watcher calls this as its heartbeat)."""
        note = {"pid": os.getpid(), "mode": self.mode, "since": getattr(self, "_since", None)
                or time.time(), "heartbeat": time.time(), **extra}
        self._since = note["since"]
        write_atomic(self.data_dir / NOTE_NAME, json.dumps(note), fsync=False)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            (self.data_dir / NOTE_NAME).unlink(missing_ok=True)
        finally:
            _unlock(fd)
            os.close(fd)

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_alive(data_dir: Path) -> dict[str, Any] | None:
    """Who holds the writer lock now (None if nobody), without taking it for long."""
    path = Path(data_dir) / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        if _try_lock(fd):
            _unlock(fd)
            return None
    finally:
        os.close(fd)
    return read_holder(Path(data_dir)) or {"pid": None}
