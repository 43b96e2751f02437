"""The side panel: the watched folders with their state and counts, what failed and why, and
the indexing progress with its pause, resume and cancel buttons."""

from __future__ import annotations

import os
import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.durations import format_duration
from desktop.gui import index_worker as w
from desktop.index.indexer import Progress
from desktop.index.scan import is_under

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
REASON_ROLE = Qt.ItemDataRole.UserRole + 2
LISTED = 100  # failed files listed under a folder; `semdex status --json` has them all
_REBUILD_MS = 250  # live changes (failures found, counts) are drawn at most this often


class LibraryPanel(QWidget):
    """Folders (top-level items) with their failed files (children), and the progress box."""

    add_clicked = Signal()
    remove_chosen = Signal(str)
    pause_clicked = Signal()
    resume_clicked = Signal()
    cancel_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._status: dict[str, Any] = {"folders": []}
        self._live_problems: dict[str, str] = {}  # seen in progress, before the next status
        self._state = w.LOADING
        self._progress: Progress | None = None
        self._redraw = QTimer(self)  # coalesces live changes: one redraw, not one per file
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(_REBUILD_MS)
        self._redraw.timeout.connect(self._rebuild)

        title = QLabel(self.tr("Library"))
        font = title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        title.setFont(font)
        self.add_button = QPushButton(self.tr("Add Folder…"))
        self.add_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        self.add_button.clicked.connect(self.add_clicked)
        head = QHBoxLayout()
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.add_button)

        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.setIndentation(14)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._menu)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setObjectName("librarySummary")

        self.progress_box = QFrame()
        self.progress_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.state_label = QLabel()
        bold = self.state_label.font()
        bold.setBold(True)
        self.state_label.setFont(bold)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.pause_button = QPushButton(self.tr("Pause"))
        self.pause_button.clicked.connect(self._pause_or_resume)
        self.cancel_button = QPushButton(self.tr("Cancel"))
        self.cancel_button.setToolTip(self.tr("Stop indexing now; resume it later"))
        self.cancel_button.clicked.connect(self.cancel_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        box = QVBoxLayout(self.progress_box)
        box.addWidget(self.state_label)
        box.addWidget(self.bar)
        box.addWidget(self.detail)
        box.addLayout(buttons)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addLayout(head)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.progress_box)
        self._show_state()

    # -- input -------------------------------------------------------------------------------

    def set_status(self, status: dict[str, Any]) -> None:
        self._status = status
        known = {p["path"] for f in status.get("folders", []) for p in f.get("problems", [])}
        self._live_problems = {p: r for p, r in self._live_problems.items() if p not in known}
        self._rebuild()

    def set_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Live per-folder counts (Engine.folder_counts) while a run indexes; the next full
        status replaces them."""
        folders = self._status.get("folders", [])
        for f in folders:
            c = counts.get(f["path"])
            if c:
                f.update(files_indexed=c["files_indexed"], passages=c["passages"],
                         files_skipped=c["files_skipped"],
                         files_failed=max(f.get("files_failed", 0), c["files_failed"]))
        if folders:
            self._status["files"] = sum(f.get("files_indexed", 0) for f in folders)
            self._status["passages"] = sum(f.get("passages", 0) for f in folders)
        self._schedule_rebuild()

    def totals(self) -> tuple[int, int]:
        """Files indexed and passages in all folders, as the panel shows them now (live while
        a run indexes): what the window's other texts must say too."""
        folders = self._status.get("folders", [])
        return (sum(f.get("files_indexed", 0) for f in folders),
                sum(f.get("passages", 0) for f in folders))

    def set_state(self, state: str) -> None:
        self._state = state
        if state in (w.WATCHING, w.PAUSED, w.IDLE):
            self._progress = None if state != w.PAUSED else self._progress
        self._rebuild()
        self._show_state()

    def set_progress(self, prog: Progress) -> None:
        self._progress = prog
        self._show_state()

    def add_problem(self, path: str, reason: str) -> None:
        self._live_problems[path] = reason
        self._schedule_rebuild()

    # -- what is shown (also for tests) ------------------------------------------------------

    def progress(self) -> Progress | None:
        return self._progress

    def folders(self) -> list[str]:
        return [f["path"] for f in self._status.get("folders", [])]

    def problems(self, folder: str | None = None) -> list[tuple[str, str]]:
        """(path, reason) of every failed or skipped file listed, in one folder or all."""
        self._flush()
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if folder and top.data(0, PATH_ROLE) != folder:
                continue
            for j in range(top.childCount()):
                child = top.child(j)
                if child.data(0, PATH_ROLE):
                    out.append((child.data(0, PATH_ROLE), child.data(0, REASON_ROLE)))
        return out

    def folder_text(self, folder: str) -> str:
        self._flush()
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top.data(0, PATH_ROLE) == folder:
                return top.text(0)
        return ""

    def selected_folder(self) -> str | None:
        item = self.tree.currentItem()
        while item is not None and item.parent() is not None:
            item = item.parent()
        return item.data(0, PATH_ROLE) if item is not None else None

    # -- drawing -----------------------------------------------------------------------------

    def _schedule_rebuild(self) -> None:
        if not self._redraw.isActive():
            self._redraw.start()

    def _flush(self) -> None:
        """Draw a scheduled change now (what the accessors read is then current)."""
        if self._redraw.isActive():
            self._redraw.stop()
            self._rebuild()

    def _folder_state(self, f: dict[str, Any]) -> str:
        if not f.get("exists", True):
            return self.tr("Folder not found")
        if self._state == w.PAUSED:
            return self.tr("Paused")
        if self._state in (w.BUSY, w.STOPPED):
            return self.tr("Not updating")
        if self._state == w.RETRYING:
            return self.tr("Not up to date: trying again soon")
        if self._state in (w.INDEXING, w.LOADING) and (
                f.get("last_sync") is None or f.get("pending")
                or (self._progress and self._progress.current
                    and is_under(self._progress.current, f["path"]))):
            return self.tr("Indexing…")
        if f.get("last_sync") is None:
            return self.tr("Waiting")
        return self.tr("Up to date")

    def _rebuild(self) -> None:
        self._redraw.stop()
        expanded = {self.tree.topLevelItem(i).data(0, PATH_ROLE)
                    for i in range(self.tree.topLevelItemCount())
                    if self.tree.topLevelItem(i).isExpanded()}
        current = self.selected_folder()
        self.tree.clear()
        style = self.style()
        failed_icon = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical)
        for f in self._status.get("folders", []):
            problems = {p["path"]: p["reason"] for p in f.get("problems", [])}
            problems.update({p: r for p, r in self._live_problems.items()
                             if is_under(p, f["path"])})
            failed = max(f.get("files_failed", 0) + f.get("files_skipped", 0), len(problems))
            counts = self.tr("{0:,} files · {1:,} passages").format(
                f.get("files_indexed", 0), f.get("passages", 0))
            if failed:
                counts += " · " + self.tr("{0:,} failed").format(failed)
            name = os.path.basename(f["path"].rstrip(os.sep)) or f["path"]
            item = QTreeWidgetItem([f"{name}\n{self._folder_state(f)}\n{counts}"])
            item.setData(0, PATH_ROLE, f["path"])
            tip = [f["path"]]
            if f.get("last_sync"):
                tip.append(self.tr("Last synced {0}").format(
                    time.strftime("%Y-%m-%d %H:%M", time.localtime(f["last_sync"]))))
            item.setToolTip(0, "\n".join(tip))
            icon = (QStyle.StandardPixmap.SP_MessageBoxWarning if failed or not f.get(
                "exists", True) else QStyle.StandardPixmap.SP_DirIcon)
            item.setIcon(0, style.standardIcon(icon))
            listed = sorted(problems.items())
            children = []
            for path, reason in listed[:LISTED]:
                child = QTreeWidgetItem([f"{os.path.basename(path)}\n{reason}"])
                child.setData(0, PATH_ROLE, path)
                child.setData(0, REASON_ROLE, reason)
                child.setToolTip(0, f"{path}\n{reason}")
                child.setIcon(0, failed_icon)
                children.append(child)
            if len(listed) > LISTED:
                more = QTreeWidgetItem([self.tr("… and {0:,} more\n(semdex status --json lists "
                                                "them all)").format(len(listed) - LISTED)])
                more.setFlags(Qt.ItemFlag.ItemIsEnabled)
                children.append(more)
            item.addChildren(children)
            self.tree.addTopLevelItem(item)
            item.setExpanded(f["path"] in expanded or (bool(problems) and len(problems) <= 20))
            if f["path"] == current:
                self.tree.setCurrentItem(item)
        files = self._status.get("files", 0)
        passages = self._status.get("passages", 0)
        self.summary.setText(self.tr("{0:,} files · {1:,} passages indexed").format(
            files, passages) if self._status.get("folders") else self.tr(
            "No folders yet. Drag a folder onto the window, or use Add Folder…"))

    def _show_state(self) -> None:
        state, prog = self._state, self._progress
        indexing = state == w.INDEXING
        self.pause_button.setText(self.tr("Resume") if state in (w.PAUSED, w.STOPPED)
                                  else self.tr("Pause"))
        self.pause_button.setEnabled(state in (w.INDEXING, w.WATCHING, w.RETRYING, w.PAUSED,
                                               w.STOPPED, w.BUSY))
        self.cancel_button.setVisible(indexing)
        titles = {
            w.LOADING: self.tr("Loading the model…"),
            w.INDEXING: self.tr("Indexing…"),
            w.WATCHING: self.tr("Up to date, watching for changes"),
            w.RETRYING: self.tr("Could not update the index"),
            w.PAUSED: self.tr("Paused"),
            w.IDLE: self.tr("Ready"),
            w.BUSY: self.tr("Another Semdex is updating this library"),
            w.STOPPED: self.tr("Indexing stopped"),
            w.QUITTING: self.tr("Closing…"),
        }
        self.state_label.setText(titles.get(state, state))
        self.bar.setVisible(indexing or state == w.LOADING)
        detail = ""
        if state == w.LOADING:
            self.bar.setRange(0, 0)
        elif prog is not None and indexing:
            if prog.phase == "scanning":
                self.bar.setRange(0, 0)
                detail = self.tr("Looking for new and changed files…")
            elif prog.phase == "finishing":
                self.bar.setRange(0, 0)
                detail = prog.step or self.tr("Updating the keyword index…")
            else:
                self.bar.setRange(0, max(1, prog.files_total))
                self.bar.setValue(prog.files_done)
                detail = self.tr("{0:,} of {1:,} files · {2:,} passages\n"
                                 "{3:,.0f} tokens/s · {4} left").format(
                    prog.files_done, prog.files_total, prog.chunks + prog.file_passages_done,
                    prog.tokens_per_s, format_duration(prog.eta_s))
                if prog.reading and prog.reading_pages:  # a scan, read by OCR
                    done, total = prog.reading_pages
                    pace = prog.ocr_seconds_per_page
                    detail += "\n" + (self.tr("{0}: reading page {1:,} of {2:,} (OCR, {3:.1f} s "
                                              "a page)") if pace else
                                      self.tr("{0}: reading page {1:,} of {2:,} (OCR)")).format(
                        os.path.basename(prog.reading), min(done + 1, total), total, pace or 0)
                elif prog.reading:  # a large file being read and cut: the embedder waits
                    detail += "\n" + self.tr("Reading {0}…").format(
                        os.path.basename(prog.reading))
                elif prog.file_passages_total and prog.current:
                    detail += "\n" + self.tr("{0}: {1:,} of {2:,} passages").format(
                        os.path.basename(prog.current), prog.file_passages_done,
                        prog.file_passages_total)
        elif state == w.PAUSED and prog is not None and prog.files_total > prog.files_done:
            detail = self.tr("{0:,} files left to index. Resume to go on.").format(
                prog.files_total - prog.files_done)
        elif state == w.PAUSED:
            detail = self.tr("Changes are not being indexed. Resume to catch up.")
        elif state == w.RETRYING:
            detail = self.tr("Changes wait; Semdex tries again by itself. The message at the "
                             "top says what failed.")
        elif state == w.WATCHING:
            detail = self.tr("New and changed files are indexed as they are saved.")
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))

    def _pause_or_resume(self) -> None:
        if self._state in (w.PAUSED, w.STOPPED):
            self.resume_clicked.emit()
        else:
            self.pause_clicked.emit()

    def _menu(self, pos: Any) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        while item.parent() is not None:
            item = item.parent()
        path = item.data(0, PATH_ROLE)
        menu = QMenu(self)
        remove = QAction(self.tr("Remove from Library"), menu)
        remove.triggered.connect(lambda: self.remove_chosen.emit(path))
        menu.addAction(remove)
        menu.exec(self.tree.viewport().mapToGlobal(pos))
