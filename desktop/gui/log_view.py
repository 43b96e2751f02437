"""The end of Semdex's log file, for a person who wants to see (or send) what went wrong.

Only the tail is read (the rotating file is at most 1 MB, but a dialog need not hold it all),
and it follows the file: a QFileSystemWatcher notices writes and rotation (the file is renamed
and a new one made, so the watch is renewed), and a short timer folds bursts of writes into one
reload.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.gui.launch import open_path
from desktop.logs import log_path

TAIL_BYTES = 256 * 1024
RELOAD_DELAY_MS = 300


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a text file, from the first whole line; "" if unreadable."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(size - limit, 0))
            data = f.read()
    except OSError:
        return ""
    if size > limit:
        data = data.split(b"\n", 1)[-1]
    return data.decode("utf-8", errors="replace")


class LogView(QDialog):
    """Read-only, monospace view of the log's tail; follows the file while open."""

    reloaded = Signal()

    def __init__(self, path: Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = Path(path) if path is not None else log_path()
        self.setWindowTitle(self.tr("Semdex log"))
        self.resize(900, 560)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.where = QLabel(str(self.path))
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        refresh = QPushButton(self.tr("Refresh"))
        refresh.clicked.connect(self.reload)
        copy = QPushButton(self.tr("Copy all"))
        copy.clicked.connect(self._copy)
        folder = QPushButton(self.tr("Open folder"))
        folder.clicked.connect(self._open_folder)
        close = QPushButton(self.tr("Close"))
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addWidget(refresh)
        buttons.addWidget(copy)
        buttons.addWidget(folder)
        buttons.addStretch(1)
        buttons.addWidget(close)
        root = QVBoxLayout(self)
        root.addWidget(self.where)
        root.addWidget(self.text, 1)
        root.addLayout(buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RELOAD_DELAY_MS)
        self._timer.timeout.connect(self.reload)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._timer.start)
        self._watcher.directoryChanged.connect(self._timer.start)
        self.reload()

    def _watch(self) -> None:
        """(Re)watch the file and its folder: rotation replaces the file under the watch."""
        wanted = [p for p in (self.path, self.path.parent) if p.exists()]
        watched = set(self._watcher.files()) | set(self._watcher.directories())
        missing = [str(p) for p in wanted if str(p) not in watched]
        if missing:
            self._watcher.addPaths(missing)

    def reload(self) -> None:
        bar = self.text.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        text = read_tail(self.path)
        if not text and not self.path.exists():
            text = self.tr("No log yet: {0} does not exist.").format(self.path)
        if text != self.text.toPlainText():
            position = bar.value()
            self.text.setPlainText(text)
            if at_end:
                self.text.moveCursor(QTextCursor.MoveOperation.End)
                bar.setValue(bar.maximum())
            else:
                bar.setValue(position)
        self._watch()
        self.reloaded.emit()

    def _copy(self) -> None:
        QApplication.clipboard().setText(self.text.toPlainText())

    def _open_folder(self) -> None:
        open_path(str(self.path.parent))
