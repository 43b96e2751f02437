"""Start the desktop app: `semdex` with no command, or `python -m desktop.gui.app`.

Logging goes to the rotating log file (desktop.logs); on top of the hooks that log uncaught
exceptions, the app adds its own that show them in the window's error banner. An exception in
any thread is handed to the GUI thread through a queued signal, never shown from where it
happened.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QWidget

from desktop.frozen import resource
from desktop.logs import setup_logging

log = logging.getLogger(__name__)


class ErrorBridge(QObject):
    """Carries an uncaught exception from any thread to the window (a queued signal)."""

    raised = Signal(str, str)  # message, traceback

    def __init__(self) -> None:
        super().__init__()
        self._previous: dict[str, Any] = {}

    def install(self) -> None:
        self._previous = {"sys": sys.excepthook, "thread": threading.excepthook}
        sys.excepthook = self._sys_hook
        threading.excepthook = self._thread_hook

    def uninstall(self) -> None:
        if sys.excepthook == self._sys_hook:
            sys.excepthook = self._previous.get("sys", sys.__excepthook__)
        if threading.excepthook == self._thread_hook:
            threading.excepthook = self._previous.get("thread", threading.__excepthook__)

    def _emit(self, kind: type[BaseException], exc: BaseException,
              tb: TracebackType | None) -> None:
        details = "".join(traceback.format_exception(kind, exc, tb))
        self.raised.emit(f"{kind.__name__}: {exc}", details)

    def _sys_hook(self, kind: type[BaseException], exc: BaseException,
                  tb: TracebackType | None) -> None:
        self._previous.get("sys", sys.__excepthook__)(kind, exc, tb)  # logs it
        if not issubclass(kind, KeyboardInterrupt):
            self._emit(kind, exc, tb)

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        self._previous.get("thread", threading.__excepthook__)(args)
        if args.exc_type is not SystemExit and args.exc_value is not None:
            self._emit(args.exc_type, args.exc_value, args.exc_traceback)


def app_icon() -> QIcon:
    """The app's icon, from the package (pip install) or the bundle (frozen): one path."""
    icon = resource("semdex.svg")
    return QIcon(str(icon)) if icon.is_file() else QIcon()


def _quit_on_signals(window: QWidget) -> None:
    """Ctrl+C in the terminal and SIGTERM close the window as Quit does (cancel, stop, wait).

    Python runs signal handlers only between bytecodes, so a timer wakes the interpreter
    while Qt's event loop waits."""
    def close(*_: object) -> None:
        window.close()

    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), close)
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def main(argv: Sequence[str] | None = None, *, data_dir: str | os.PathLike[str] | None = None,
         model: str | None = None, family: str | None = None, verbose: bool = False,
         smoke_test: bool = False, smoke_query: str | None = None,
         smoke_open: bool = False, screenshot: str | None = None) -> int:
    """Run the app until its window is closed; returns the exit code."""
    from desktop.gui.main_window import MainWindow

    path = setup_logging(verbose)
    log.info("Semdex starting; log file %s", path)
    if not verbose:
        logging.getLogger("llama_cpp").setLevel(logging.ERROR)
    QApplication.setApplicationName("Semdex")
    QApplication.setOrganizationName("Semdex")
    app = QApplication.instance() or QApplication(list(argv if argv is not None else sys.argv))
    app.setWindowIcon(app_icon())
    bridge = ErrorBridge()
    bridge.install()
    try:
        window = MainWindow(data_dir, model=model, family=family)
        bridge.raised.connect(window.report_error)
        if smoke_test:
            from desktop.gui.smoke import SmokeTest

            window._smoke = SmokeTest(window, query=smoke_query, screenshot=screenshot,
                                      open_result=smoke_open)
        window.show()
        _quit_on_signals(window)
        code = app.exec()
        if not window.shutdown():
            # Still writing after the timeout: leave now. The store survives a kill at any
            # moment and the kernel drops the writer lock; a Qt thread destroyed while it
            # runs would abort the process instead.
            log.error("quitting with the indexing thread still running")
            logging.shutdown()
            os._exit(code)
        return code
    finally:
        bridge.uninstall()


if __name__ == "__main__":
    from desktop.frozen import run_child_flag

    run_child_flag(sys.argv[1:])  # a frozen app started here is also its own child
    sys.exit(main())
