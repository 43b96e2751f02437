"""Open a file or folder in the person's own programs.

From a source install this is Qt's QDesktopServices. A frozen app (PyInstaller) points
LD_LIBRARY_PATH, QT_PLUGIN_PATH and QML2_IMPORT_PATH into its bundle, and xdg-open, and the
PDF viewer it starts, would inherit them and load our Qt instead of their own; so a frozen app
starts the platform's opener itself, with the person's own environment (desktop/frozen.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices

from desktop.frozen import external_env, is_frozen

log = logging.getLogger(__name__)


def _start(argv: list[str] | str) -> bool:
    try:
        kw: dict = {"start_new_session": True} if os.name == "posix" else {}
        subprocess.Popen(argv, env=external_env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    except OSError as exc:
        log.warning("could not start %s: %s", argv, exc)
        return False
    return True


def open_path(path: str) -> bool:
    """Open a file (or a folder) with the program the person chose for it."""
    path = os.path.abspath(path)
    if not is_frozen():
        return QDesktopServices.openUrl(QUrl.fromLocalFile(path))
    if sys.platform == "win32":  # quoted whole: explorer splits its arguments at commas
        return _start(f'explorer.exe "{os.path.normpath(path)}"')
    if sys.platform == "darwin":
        return _start(["open", path])
    return _start(["xdg-open", path])


def reveal_path(path: str) -> bool:
    """Show the file selected in its folder where the platform can, else open the folder."""
    path = os.path.abspath(path)
    if sys.platform == "darwin" and os.path.exists(path):
        argv = ["open", "-R", path]
    elif sys.platform == "win32" and os.path.exists(path):
        argv = ["explorer.exe", "/select,", os.path.normpath(path)]
        if is_frozen():
            return _start(f'explorer.exe /select,"{os.path.normpath(path)}"')
    else:
        return open_path(os.path.dirname(path))
    return _start(argv) if is_frozen() else QProcess.startDetached(argv[0], argv[1:])[0]
