"""One rotating log file for the app, and hooks so that no uncaught exception goes unrecorded.

A desktop app has no terminal to print to: when something goes wrong for a person, the log file
is what they can send. ``setup_logging`` writes every module's ``logging.getLogger(__name__)``
records to ``semdex.log`` in the platform's log folder (three files of 1 MB at most), and
installs ``sys.excepthook`` and ``threading.excepthook`` that log an uncaught exception before
handing it to the hook that was there before (the GUI adds its own notification on top).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from desktop.paths import log_dir

FILE_NAME = "semdex.log"
MAX_BYTES = 1 << 20
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s]: %(message)s"

log = logging.getLogger(__name__)

_state: dict[str, object] = {}  # handler, path, and the hooks we replaced


def error_details(exc: BaseException) -> str:
    """The traceback of an error as text: the details a person can open beside the message."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def log_path() -> Path:
    """Where the current log file is (or would be)."""
    path = _state.get("path")
    return path if isinstance(path, Path) else log_dir() / FILE_NAME


def setup_logging(verbose: bool = False) -> Path:
    """Log to the rotating file (INFO, or DEBUG when verbose) and hook uncaught exceptions.

    Calling it again changes only the level (or moves the file when the log folder changed);
    handlers and hooks are never installed twice. Returns the log file's path. Never raises:
    when the folder cannot be written, records go to stderr instead.
    """
    path = log_dir() / FILE_NAME
    root = logging.getLogger()
    handler = _state.get("handler")
    if isinstance(handler, logging.Handler) and _state.get("path") != path:
        root.removeHandler(handler)
        handler.close()
        handler = None
    if not isinstance(handler, logging.Handler):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=False)
        except OSError as exc:
            print(f"semdex: cannot write the log file {path}: {exc}", file=sys.stderr)
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        _state.setdefault("root_level", root.level)
        _state.update(handler=handler, path=path)
    level = logging.DEBUG if verbose else logging.INFO
    handler.setLevel(level)
    root.setLevel(level)
    _install_hooks()
    return path


def teardown_logging() -> None:
    """Remove the handler and restore the hooks (tests; a clean shutdown)."""
    handler = _state.pop("handler", None)
    _state.pop("path", None)
    if isinstance(handler, logging.Handler):
        logging.getLogger().removeHandler(handler)
        handler.close()
    level = _state.pop("root_level", None)
    if isinstance(level, int):
        logging.getLogger().setLevel(level)
    if "sys_hook" in _state:
        if sys.excepthook is _sys_hook:
            sys.excepthook = _state["sys_hook"]  # type: ignore[assignment]
        del _state["sys_hook"]
    if "thread_hook" in _state:
        if threading.excepthook is _thread_hook:
            threading.excepthook = _state["thread_hook"]  # type: ignore[assignment]
        del _state["thread_hook"]


def _install_hooks() -> None:
    if sys.excepthook is not _sys_hook:
        _state["sys_hook"] = sys.excepthook
        sys.excepthook = _sys_hook
    if threading.excepthook is not _thread_hook:
        _state["thread_hook"] = threading.excepthook
        threading.excepthook = _thread_hook


def _sys_hook(kind: type[BaseException], exc: BaseException,
              tb: TracebackType | None) -> None:
    if not issubclass(kind, KeyboardInterrupt):
        log.critical("uncaught exception", exc_info=(kind, exc, tb))
    previous = _state.get("sys_hook", sys.__excepthook__)
    previous(kind, exc, tb)  # type: ignore[operator]


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        name = args.thread.name if args.thread is not None else "?"
        log.critical("uncaught exception in thread %s", name,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
    previous = _state.get("thread_hook", threading.__excepthook__)
    previous(args)  # type: ignore[operator]
