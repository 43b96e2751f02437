"""`semdex --smoke-test [--smoke-query TEXT] [--smoke-open] [--screenshot PNG]`: the real
window, start to quit.

For the installers' smoke test (installers/build.py) and the start-up benchmark
(bench/startup.py): the app starts as a person starts it, shows its window, waits until the
model and the index are ready (after catching up with its folders, if it has any), searches
once when asked to and there is something to search (and opens the first result with the
system's viewer, with --smoke-open), saves a screenshot and quits. It prints
one line per milestone on stdout, with seconds since the process started:

    semdex-smoke: shown 0.84
    semdex-smoke: ready 1.92
    semdex-smoke: results 3 2.10
    semdex-smoke: ok

and exits 0; 1 when the window reported an error (the error is printed), 2 on a timeout.
"""

from __future__ import annotations

import os
import sys
import time

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from desktop.gui import index_worker as w


def process_age() -> float:
    """Seconds since this process started (from the OS where it says; else since import)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):  # no /proc: since this module was imported
        return time.monotonic() - _IMPORTED


_IMPORTED = time.monotonic()


class SmokeTest(QObject):
    def __init__(self, window, *, query: str | None, screenshot: str | None,
                 open_result: bool = False, timeout: float = 180.0) -> None:
        super().__init__(window)
        self.window = window
        self.query = query
        self.open_result = open_result
        self.screenshot = screenshot
        self.code: int | None = None
        self._shown = False
        self._searched = False
        window.installEventFilter(self)
        window.search_finished.connect(self._results)
        self._poll = QTimer(self)
        self._poll.timeout.connect(self._check)
        self._poll.start(100)
        QTimer.singleShot(int(timeout * 1000), self._timeout)

    @staticmethod
    def say(text: str) -> None:
        print(f"semdex-smoke: {text}", flush=True)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if not self._shown and obj is self.window and event.type() == QEvent.Type.Paint:
            self._shown = True
            self.say(f"shown {process_age():.2f}")
        return False

    def _check(self) -> None:
        if self.code is not None:
            return
        if self.window.errors():
            self._finish(1)
            return
        state = self.window.worker_state()
        if not self._shown or state not in (w.IDLE, w.WATCHING):
            return
        if self._searched:
            return
        self._searched = True
        self.say(f"ready {process_age():.2f}")
        if self.query and self.window.status().get("files"):
            self.window.search_field.setText(self.query)
            self.window.search_bar.search_now()
        elif self.query:  # asked to search, and there is nothing indexed: not a pass
            self.say("nothing indexed to search")
            QTimer.singleShot(300, lambda: self._finish(1))
        else:
            QTimer.singleShot(300, lambda: self._finish(0))

    def _results(self, count: int) -> None:
        if self.code is None and self._searched:
            self.say(f"results {count} {process_age():.2f}")
            if count:  # the first result previewed, its passage highlighted
                self.window.results_view.setCurrentIndex(self.window.results.index(0))
                if self.open_result:  # and handed to the person's own viewer (Open)
                    QTimer.singleShot(300, self.window.preview.open_file)
            QTimer.singleShot(800, lambda: self._finish(0 if count else 1))

    def _timeout(self) -> None:
        if self.code is None:
            self.say(f"timed out in state {self.window.worker_state()}")
            self._finish(2)

    def _finish(self, code: int) -> None:
        if self.code is not None:
            return
        self.code = code
        self._poll.stop()
        for message, details in self.window.errors():
            print(f"semdex-smoke: error: {message}\n{details}", file=sys.stderr, flush=True)
        if self.screenshot:
            if not self.window.grab().save(self.screenshot):
                print(f"semdex-smoke: could not save {self.screenshot}", file=sys.stderr)
                self.code = code = code or 1
        self.say("ok" if code == 0 else f"failed ({code})")
        self.window.close()
        QApplication.instance().exit(code)
