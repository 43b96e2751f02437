"""Route llama.cpp's own log lines into Python logging, and remember its last errors.

llama-cpp-python maps ggml's log levels wrongly (its table predates ggml's DEBUG level), so with
verbose=False warnings spill onto the terminal and errors vanish, including the one line that
says *why* a model failed to load. This callback fixes both: everything goes to the
"llama_cpp" logger at the right level, and recent errors are kept so a load failure can be
explained to the person.
"""

from __future__ import annotations

import collections
import logging
import threading

log = logging.getLogger("llama_cpp")

_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_errors: collections.deque[str] = collections.deque(maxlen=8)
_lock = threading.Lock()
_installed = None  # the ctypes callback must stay referenced for as long as it is installed
_last_level = logging.INFO
_partial: list[str] = []


def install() -> None:
    """Install once per process; later calls do nothing."""
    global _installed
    with _lock:
        if _installed is not None:
            return
        import llama_cpp

        @llama_cpp.llama_log_callback
        def _callback(level: int, text: bytes, _user: object) -> None:
            global _last_level
            # level 5 (CONT) continues the previous line at the previous level
            py_level = _last_level if level == 5 else _LEVELS.get(level, logging.DEBUG)
            _last_level = py_level
            chunk = text.decode("utf-8", "replace")
            _partial.append(chunk)
            if not chunk.endswith("\n"):
                return
            line = "".join(_partial).strip()
            _partial.clear()
            if not line:
                return
            if py_level >= logging.ERROR:
                _errors.append(line)
            log.log(py_level, "%s", line)

        llama_cpp.llama_log_set(_callback, None)
        _installed = _callback


def take_errors() -> list[str]:
    """The error lines logged since the last call (oldest first)."""
    with _lock:
        out = list(_errors)
        _errors.clear()
    return out


def explain(errors: list[str]) -> str | None:
    """The most telling line of a failed load, without llama.cpp's function-name prefixes."""
    for line in reversed(errors):
        head, sep, rest = line.partition(": ")
        text = rest if sep and head.isidentifier() else line
        while text.startswith("error loading model"):
            text = text.partition(": ")[2] or text[len("error loading model"):]
        text = text.strip()
        if text and text != "failed to load model":
            return text
    return None
