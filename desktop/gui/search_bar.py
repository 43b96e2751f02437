"""The search field with its options: mode, task preset or own instruction, and filters.

Typing asks for a search once the person pauses (300 ms); Enter asks at once. The task presets
are the active model's (`Profile.tasks`): a model that takes no instruction offers one preset,
and only instruction-tuned models offer a field for the person's own instruction.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from desktop.models.profiles import DEFAULT_TASK, TASK_LABELS, Profile
from desktop.search import MODES, TYPE_GROUPS, Filters, Query

DEBOUNCE_MS = 300
CUSTOM = "__custom__"
_DAY = 24 * 3600.0


class SearchBar(QWidget):
    search_requested = Signal()  # the query or an option changed (debounced), or Enter
    ask_requested = Signal()  # Ask: an answer written from the passages (desktop/ask)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.field = QLineEdit()
        self.field.setPlaceholderText(self.tr("Search your files by meaning…"))
        self.field.setClearButtonEnabled(True)
        font = self.field.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.field.setFont(font)
        self.field.setMinimumHeight(34)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.search_requested)
        self.field.textEdited.connect(lambda _: self._timer.start())
        self.field.returnPressed.connect(self.search_now)

        self.mode = QComboBox()
        labels = {"hybrid": self.tr("Hybrid"), "semantic": self.tr("Meaning"),
                  "keyword": self.tr("Keywords")}
        for key in sorted(MODES, key=lambda m: m != "hybrid"):  # the default first
            self.mode.addItem(labels[key], key)
        self.mode.setToolTip(self.tr("Hybrid combines meaning and exact words"))
        self.task = QComboBox()
        self.task.setToolTip(self.tr("What the search is for: the model's instruction preset"))
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText(self.tr("Your own instruction for the model…"))
        self.instruction.setVisible(False)
        self.instruction.textEdited.connect(lambda _: self._timer.start())

        self.folder = QComboBox()
        self.folder.addItem(self.tr("All folders"), None)
        self.kind = QComboBox()
        types = {"pdf": self.tr("PDF"), "docx": self.tr("Documents (Word, ODT, RTF)"),
                 "slides": self.tr("Slides"), "sheets": self.tr("Spreadsheets and CSV"),
                 "ebook": self.tr("E-books"), "mail": self.tr("Mail"),
                 "image": self.tr("Images (OCR)"), "text": self.tr("Text and Markdown"),
                 "html": self.tr("Web pages"), "code": self.tr("Code and notebooks")}
        self.kind.addItem(self.tr("All types"), None)
        for key in TYPE_GROUPS:  # the core's file types, as `semdex search --type` names them
            self.kind.addItem(types[key], key)
        self.date = QComboBox()
        for days, label in ((None, self.tr("Any time")), (1, self.tr("Past day")),
                            (7, self.tr("Past week")), (31, self.tr("Past month")),
                            (365, self.tr("Past year"))):
            self.date.addItem(label, days)
        for combo in (self.mode, self.task, self.folder, self.kind, self.date):
            combo.activated.connect(lambda _: self.search_now())
        self.task.currentIndexChanged.connect(self._task_changed)

        options = QHBoxLayout()
        options.setContentsMargins(0, 0, 0, 0)
        for label, widget in ((self.tr("Mode"), self.mode), (self.tr("Task"), self.task)):
            options.addWidget(QLabel(label))
            options.addWidget(widget)
        options.addWidget(self.instruction, 1)
        options.addStretch(1)
        options.addWidget(QLabel(self.tr("Filter")))
        options.addWidget(self.folder)
        options.addWidget(self.kind)
        options.addWidget(self.date)

        self.ask_button = QPushButton(self.tr("Ask"))
        self.ask_button.setToolTip(self.tr("A short answer written from your documents by the "
                                           "chat model, every sentence citing its passages"))
        self.ask_button.setMinimumHeight(34)
        self.ask_button.clicked.connect(self.ask_requested)

        layout = QGridLayout(self)
        layout.setContentsMargins(10, 8, 10, 4)
        layout.addWidget(self.field, 0, 0)
        layout.addWidget(self.ask_button, 0, 1)
        layout.addLayout(options, 1, 0, 1, 2)
        self.set_profile(None)

    # -- setting up --------------------------------------------------------------------------

    def set_profile(self, profile: Profile | None, task: str = DEFAULT_TASK,
                    instruction: str = "") -> None:
        """Offer the task presets of the active model's family."""
        self.task.blockSignals(True)
        self.task.clear()
        tasks = profile.tasks if profile else [DEFAULT_TASK]
        for t in tasks:
            self.task.addItem(self.tr(TASK_LABELS.get(t, t)), t)
        if profile is not None and profile.instruct:
            self.task.addItem(self.tr("Own instruction…"), CUSTOM)
        if instruction and profile is not None and profile.instruct:
            self.instruction.setText(instruction)
            task = CUSTOM
        index = self.task.findData(task)
        self.task.setCurrentIndex(max(0, index))
        self.task.setEnabled(self.task.count() > 1)
        self.task.blockSignals(False)
        self._task_changed()

    def set_mode(self, mode: str) -> None:
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))

    def set_folders(self, folders: list[str]) -> None:
        current = self.folder.currentData()
        self.folder.blockSignals(True)
        self.folder.clear()
        self.folder.addItem(self.tr("All folders"), None)
        for f in folders:
            self.folder.addItem(f.rstrip("/\\").rsplit("/", 1)[-1] or f, f)
            self.folder.setItemData(self.folder.count() - 1, f, Qt.ItemDataRole.ToolTipRole)
        self.folder.setCurrentIndex(max(0, self.folder.findData(current)))
        self.folder.blockSignals(False)

    def _task_changed(self) -> None:
        self.instruction.setVisible(self.task.currentData() == CUSTOM)

    # -- reading -----------------------------------------------------------------------------

    def search_now(self) -> None:
        self._timer.stop()
        self.search_requested.emit()

    def query(self) -> str:
        return self.field.text().strip()

    def filters(self) -> Filters:
        days = self.date.currentData()
        kind = self.kind.currentData()
        return Filters.of(types=(kind,) if kind else (), folder=self.folder.currentData(),
                          since=time.time() - days * _DAY if days else None)

    def request(self, k: int = 20, per_file: int | None = 3) -> Query | None:
        query = self.query()
        if not query:
            return None
        task = self.task.currentData()
        instruction = self.instruction.text().strip() if task == CUSTOM else None
        return Query(text=query, mode=self.mode.currentData(), k=k, per_file=per_file,
                     task=None if task == CUSTOM else task, instruction=instruction or None,
                     filters=self.filters())
