"""Extraction in a child process, with a time limit that cannot leave the indexer stuck.

The parsers of PDF, Office and e-book files are large and not ours; a crafted or damaged file
can keep one busy for minutes (a PDF whose content stream repeats an operator millions of
times), or crash it in native code (the PDF renderer or the OCR engine). A Python thread cannot
be stopped, so these formats are extracted in a child process that Semdex starts once and
reuses: a file that takes longer than the limit is given up on with a reason, the child is
killed and started afresh for the next file, and a crash is a failed file, never a dead app.
Plain text, Markdown, code, HTML, CSV and notebooks are parsed in-process: the standard
library's parsers, linear in the file's size.

The child is Semdex itself (desktop/frozen.py child_command), reading requests on stdin and
answering on stdout: length-prefixed pickles, between two processes of the same program.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

from desktop.extract.model import GAVE_UP, Document, ExtractionError, Pages, Skipped
from desktop.extract.settings import ExtractSettings
from desktop.frozen import child_command

log = logging.getLogger(__name__)

CHILD_FLAG = "--semdex-extract"
DEFAULT_TIMEOUT = 120.0  # seconds a file may take to extract
_HEADER = struct.Struct(">Q")
_POLL = 0.25  # seconds between looks at whether the run is being cancelled


def _send(stream: BinaryIO, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: BinaryIO) -> object:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - our own child, over its own pipe


class IsolatedExtractor:
    """A child process that extracts files one at a time; thread-safe (requests queue up)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()

    def extract(self, name: str, data: bytes, timeout: float | None = None,
                settings: ExtractSettings | None = None,
                progress: Callable[[Pages], None] | None = None,
                stopping: Callable[[], bool] | None = None) -> Document:
        """What desktop.extract.extract gives for this file, computed in the child.

        The time limit runs from the start, and again from each page read by OCR (which
        ``progress`` hears of): a scanned book takes as long as its pages need, a page that
        hangs the engine does not. ``stopping`` is asked every quarter second; when it says
        so, the child is stopped and the file given up (the run is being cancelled).
        """
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            proc = self._ensure()
            try:
                assert proc.stdin is not None
                _send(proc.stdin, (str(name), data, settings))
            except (BrokenPipeError, OSError):
                self._stop()
                raise ExtractionError("the extractor stopped unexpectedly") from None
            reply = self._await(limit, progress, stopping)
        if reply is None:  # the child died mid-file
            code = self._stop()
            raise ExtractionError(f"the extractor crashed on it (exit code {code})")
        kind, value = reply  # type: ignore[misc]
        if kind == "ok":
            return value  # type: ignore[return-value]
        if kind == "skipped":
            raise Skipped(value)  # type: ignore[arg-type]
        raise ExtractionError(value)  # type: ignore[arg-type]

    def _await(self, limit: float, progress: Callable[[Pages], None] | None,
               stopping: Callable[[], bool] | None) -> object:
        """The child's answer, passing its progress on; raises when it is given up on."""
        deadline = time.monotonic() + limit
        pages: Pages | None = None
        while True:
            wait = deadline - time.monotonic()
            if stopping is not None:
                wait = min(wait, _POLL)
            try:
                reply = self._replies.get(timeout=max(0.0, wait))
            except queue.Empty:
                if stopping is not None and stopping():
                    self._stop()
                    raise ExtractionError("stopped: indexing was cancelled") from None
                if time.monotonic() < deadline:
                    continue
                self._stop()
                if pages is not None:
                    raise ExtractionError(
                        f"{GAVE_UP} page {pages.done + 1} of {pages.total} took over "
                        f"{limit:.0f} s to read") from None
                raise ExtractionError(f"{GAVE_UP} extracting it took over {limit:.0f} s (a "
                                      "damaged or unusually complex file)") from None
            if isinstance(reply, Pages):
                pages = reply
                deadline = time.monotonic() + limit
                if progress is not None:
                    progress(reply)
                continue
            return reply

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._replies = queue.Queue()
        kw: dict = {}
        if sys.platform == "win32":
            kw["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
        self._proc = subprocess.Popen(child_command(CHILD_FLAG), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      **kw)
        threading.Thread(target=self._read_replies, args=(self._proc, self._replies),
                         name="semdex-extract-reader", daemon=True).start()
        return self._proc

    @staticmethod
    def _read_replies(proc: subprocess.Popen[bytes], replies: queue.Queue[object]) -> None:
        assert proc.stdout is not None
        while True:
            try:
                replies.put(_receive(proc.stdout))
            except (EOFError, OSError, pickle.UnpicklingError):
                replies.put(None)
                return

    def _stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        with self._lock:
            self._stop()


_shared: IsolatedExtractor | None = None
_shared_lock = threading.Lock()


def shared(timeout: float = DEFAULT_TIMEOUT) -> IsolatedExtractor:
    """The process's extraction child (started at its first file, reused after)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = IsolatedExtractor(timeout)
            atexit.register(_shared.close)
        _shared.timeout = timeout
        return _shared


def child_main(argv: Sequence[str]) -> int:
    """The child: extract each file it is sent, answer, until its input closes."""
    from desktop.extract import extract

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a parser's stray print must not corrupt the replies
    def progress(pages: Pages) -> None:
        _send(stdout, pages)

    while True:
        try:
            name, data, settings = _receive(stdin)  # type: ignore[misc]
        except EOFError:
            return 0
        try:
            reply: tuple[str, object] = ("ok", extract(name, data, settings, progress))
        except Skipped as exc:
            reply = ("skipped", exc.reason)
        except ExtractionError as exc:
            reply = ("failed", exc.reason)
        except MemoryError:
            reply = ("failed", "too large to extract: out of memory")
        except Exception as exc:  # noqa: BLE001 - any parser failure is a failed file
            reply = ("failed", f"could not be extracted ({type(exc).__name__})")
        _send(stdout, reply)
        del data


def run_as_child(argv: Sequence[str]) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return child_main(argv)


if __name__ == "__main__":
    sys.exit(run_as_child(sys.argv[1:]))
