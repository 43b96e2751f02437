"""The preview pane: a search hit shown in place, in its file, with the passage marked.

Files are read again when shown, never trusted from the index: a file may have moved, changed
or broken since it was indexed, and each case ends in a message in the pane, not an exception.
PDFs are rendered with QtPdf (:mod:`desktop.gui.preview_pdf`); every other kind is re-extracted
with the core's own extractor so that the hit's character offsets mean the same thing
(:mod:`desktop.gui.preview_text`).

Opening a file goes through the desktop's default application, which cannot be told a page on
Linux or macOS: PDFs open at their first page there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.extract import ISOLATED_KINDS, ExtractionError, Skipped, extract, kind_for
from desktop.extract.isolated import shared as shared_extractor
from desktop.gui.launch import open_path, reveal_path
from desktop.gui.preview_image import ImagePreview
from desktop.gui.preview_pdf import PdfPreview, ocr_boxes
from desktop.gui.preview_text import TextPreview
from desktop.gui.results import location_word
from desktop.search.locate import line_of, locate_passage, same_passage

logger = logging.getLogger(__name__)

MONOSPACE_KINDS = frozenset({"code"})
FILE_TEXT_KINDS = frozenset({"text", "markdown", "rst", "code"})  # extracted text == the file
MAX_TEXT_CHARS = 2_000_000  # beyond this only a window around the passage is shown
TEXT_WINDOW = 400_000
PREVIEW_TIMEOUT = 30.0  # seconds a file's text may take to extract for the preview


class _Unavailable(Exception):
    """The preview cannot be shown; the message says why, for the user."""


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with an ellipsis instead of widening the pane."""

    def __init__(self, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(0, self.contentsRect().width())
        self.setText(self.fontMetrics().elidedText(self._full, self._mode, width)
                     if width else self._full)


class PreviewPane(QWidget):
    """Header (file, folder, where, actions), an optional note, and the file's content.

    ``launch=False`` keeps Open and Reveal from starting other applications; the signals still
    fire, which is what tests check.
    """

    open_requested = Signal(str)
    reveal_requested = Signal(str)
    path_copied = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, launch: bool = True) -> None:
        super().__init__(parent)
        self.launch = launch
        self._path = ""

        self._name = ElidedLabel()
        font = self._name.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self._name.setFont(font)
        self._folder = ElidedLabel(Qt.TextElideMode.ElideMiddle)
        self._where = QLabel()
        for label in (self._folder, self._where):
            label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._open = QPushButton(self.tr("Open"), toolTip=self.tr("Open with the default app"))
        self._reveal = QPushButton(self.tr("Reveal in folder"),
                                   toolTip=self.tr("Show the file in its folder"))
        self._copy = QPushButton(self.tr("Copy path"),
                                 toolTip=self.tr("Copy the file's path to the clipboard"))
        self._open.clicked.connect(self.open_file)
        self._reveal.clicked.connect(self.reveal_file)
        self._copy.clicked.connect(self.copy_path)

        top = QHBoxLayout()
        top.addWidget(self._name, 1)
        for button in (self._open, self._reveal, self._copy):
            top.addWidget(button)
        sub = QHBoxLayout()
        sub.addWidget(self._folder, 1)
        sub.addWidget(self._where)

        self._note = QLabel(wordWrap=True, visible=False)
        self._note.setStyleSheet("QLabel { background: palette(tooltip-base); "
                                 "color: palette(tooltip-text); padding: 4px; }")
        self._message = QLabel(wordWrap=True, alignment=Qt.AlignmentFlag.AlignCenter)
        self._message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._message.setMargin(24)
        self._text = TextPreview()
        self._pdf = PdfPreview()
        self._image = ImagePreview()
        self._stack = QStackedWidget()
        for widget in (self._message, self._text, self._pdf, self._image):
            self._stack.addWidget(widget)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addLayout(sub)
        layout.addWidget(self._note)
        layout.addWidget(self._stack, 1)
        self.clear()

    # ---- showing ---------------------------------------------------------------------------

    def show_passage(self, path: str, page: int | None, start: int, end: int, text: str,
                     kind: str, query: str = "", ocr_lines: list | None = None) -> None:
        """Show the passage ``text`` found at [start, end) of ``page`` (PDFs) or of the file."""
        self._path = str(path)
        p = Path(self._path)
        self._name.set_full_text(p.name)
        self._folder.set_full_text(str(p.parent))
        self._where.clear()
        self._set_note(None)
        for button in (self._open, self._reveal, self._copy):
            button.setEnabled(True)
        try:
            if kind == "pdf":
                self._show_pdf(page or 1, start, end, text, ocr_lines)
            elif kind == "image":
                self._show_image(page, start, end, ocr_lines)
            else:
                self._show_text(page, start, end, text, kind, query)
        except _Unavailable as exc:
            self._show_message(str(exc))
            self._open.setEnabled(os.path.exists(self._path))
        except Exception:  # a preview must never take the app down
            logger.exception("preview of %s failed", self._path)
            self._show_message(self.tr("This file could not be previewed."))

    def clear(self) -> None:
        self._path = ""
        self._name.set_full_text("")
        self._folder.set_full_text("")
        self._where.clear()
        self._set_note(None)
        self._text.clear_text()
        self._pdf.unload()
        self._image.unload()
        for button in (self._open, self._reveal, self._copy):
            button.setEnabled(False)
        self._show_message(self.tr("Select a result to preview it here."))

    def _show_message(self, message: str) -> None:
        self._message.setText(message)
        self._stack.setCurrentWidget(self._message)

    def _set_note(self, note: str | None) -> None:
        self._note.setText(note or "")
        self._note.setVisible(bool(note))

    def _gone(self) -> _Unavailable:
        return _Unavailable(self.tr(
            "This file is no longer at {path}.\nIt may have been moved or deleted since it was "
            "indexed.").format(path=self._path))

    def _stat(self) -> os.stat_result:
        try:
            return os.stat(self._path)
        except FileNotFoundError:
            raise self._gone() from None
        except OSError as exc:
            raise _Unavailable(self.tr("This file cannot be read: {reason}.")
                               .format(reason=exc.strerror or exc)) from None

    def _read(self) -> bytes:
        try:
            with open(self._path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise self._gone() from None
        except PermissionError:
            raise _Unavailable(self.tr("Semdex is not allowed to read this file.")) from None
        except OSError as exc:
            raise _Unavailable(self.tr("This file cannot be read: {reason}.")
                               .format(reason=exc.strerror or exc)) from None

    def _show_image(self, page: int | None, start: int, end: int,
                    ocr_lines: list | None) -> None:
        self._pdf.unload()
        error = self._image.load(self._read(), (page or 1) - 1)
        if error:
            raise _Unavailable(error)
        if page:
            self._where.setText(location_word("image", page))
        self._stack.setCurrentWidget(self._image)
        self._set_note(self._image.show_boxes(ocr_boxes(ocr_lines or [], start, end)))

    def _show_pdf(self, page: int, start: int, end: int, text: str,
                  ocr_lines: list | None = None) -> None:
        st = self._stat()
        key = (self._path, st.st_mtime_ns, st.st_size)
        if not self._pdf.has_document(key):
            error = self._pdf.load(key, self._read())
            if error:
                raise _Unavailable(error)
        self._where.setText(self.tr("page {page}").format(page=page))
        self._stack.setCurrentWidget(self._pdf)
        self._set_note(self._pdf.show_passage(page, text, start, end, ocr_lines))

    def _show_text(self, page: int | None, start: int, end: int, passage: str, kind: str,
                   query: str) -> None:
        self._pdf.unload()  # only one document's memory is kept
        data = self._read()
        try:
            # the complex formats in the extraction child: a file that hangs its parser
            # costs the preview PREVIEW_TIMEOUT seconds, not the window
            if kind_for(self._path) in ISOLATED_KINDS:
                document = shared_extractor().extract(self._path, data, PREVIEW_TIMEOUT)
            else:
                document = extract(self._path, data)
        except (Skipped, ExtractionError) as exc:
            raise _Unavailable(self.tr("This file cannot be shown: {reason}.")
                               .format(reason=exc.reason)) from None
        sections = document.sections
        section = next((s for s in sections if s.page == page), sections[0] if sections else None)
        if section is None:
            raise _Unavailable(self.tr("This file has no text to show."))
        content = section.text
        span: tuple[int, int] | None = (start, end)
        note = None
        if not (0 <= start < end <= len(content) and same_passage(content[start:end], passage)):
            span = locate_passage(content, passage) if passage.strip() else None
            if span is None:
                note = self.tr("This file has changed since it was indexed and the passage is no "
                               "longer in it. Re-indexing will update the results.")
            else:
                note = self.tr("This file has changed since it was indexed; the passage was "
                               "found at a new place.")
        if page and section.page == page:
            self._where.setText(location_word(kind, page))
        elif span is not None and kind in FILE_TEXT_KINDS:  # lines of the file on disk
            first, last = line_of(content, span[0]), line_of(content, span[1] - 1)
            self._where.setText(self.tr("line {first}").format(first=first) if first == last
                                else self.tr("lines {first}–{last}").format(first=first,
                                                                            last=last))
        first_line = 1
        if len(content) > MAX_TEXT_CHARS:
            content, span, first_line = self._window(content, span)
            note = (note + " " if note else "") + self.tr(
                "Only part of this large file is shown, from line {line}.").format(
                line=first_line)
        self._set_note(note)
        self._stack.setCurrentWidget(self._text)
        self._text.show_text(content, span, monospace=kind in MONOSPACE_KINDS, query=query,
                             first_line=first_line)

    @staticmethod
    def _window(content: str, span: tuple[int, int] | None
                ) -> tuple[str, tuple[int, int] | None, int]:
        """A stretch of whole lines around the passage: the editor stays quick on huge logs."""
        centre = (span[0] + span[1]) // 2 if span else 0
        lo = max(0, centre - TEXT_WINDOW // 2)
        lo = content.rfind("\n", 0, lo) + 1 if lo else 0
        hi = content.find("\n", min(len(content), lo + TEXT_WINDOW))
        hi = len(content) if hi < 0 else hi
        if span is not None:
            lo, hi = min(lo, content.rfind("\n", 0, span[0]) + 1), max(hi, span[1])
            span = (span[0] - lo, span[1] - lo)
        return content[lo:hi], span, line_of(content, lo)

    # ---- actions ---------------------------------------------------------------------------

    def open_file(self) -> None:
        if not self._path:
            return
        self.open_requested.emit(self._path)
        if self.launch and not open_path(self._path):
            self._set_note(self.tr("No application could open this file."))

    def reveal_file(self) -> None:
        if not self._path:
            return
        self.reveal_requested.emit(self._path)
        if self.launch and not reveal_path(self._path):
            self._set_note(self.tr("The folder could not be opened."))

    def copy_path(self) -> None:
        if not self._path:
            return
        QGuiApplication.clipboard().setText(self._path)
        self.path_copied.emit(self._path)

    # ---- for tests and callers -------------------------------------------------------------

    def path(self) -> str:
        return self._path

    def message(self) -> str | None:
        """The message shown instead of a preview, if any."""
        return self._message.text() if self._stack.currentWidget() is self._message else None

    def note(self) -> str | None:
        return self._note.text() or None

    def location(self) -> str:
        return self._where.text()

    def current_page(self) -> int | None:
        return self._pdf.current_page() if self._stack.currentWidget() is self._pdf else None

    def go_to_page(self, page: int) -> None:
        self._pdf.go_to_page(page)

    def highlight_rects(self) -> list:
        """The highlight's rectangles on the rendered page or image shown."""
        if self._stack.currentWidget() is self._image:
            return self._image.highlight_rects()
        return self._pdf.highlight_rects()

    def rendered_image(self) -> QImage:
        if self._stack.currentWidget() is self._image:
            return self._image.rendered_image()
        return self._pdf.rendered_image()

    def highlighted_range(self) -> tuple[int, int] | None:
        return self._text.highlighted_range()

    def visible_text(self) -> str:
        """The text lines currently in the editor's viewport."""
        editor = self._text
        if self._stack.currentWidget() is not editor:
            return ""
        lines = []
        block = editor.firstVisibleBlock()
        height = editor.viewport().height()
        while block.isValid():
            top = editor.blockBoundingGeometry(block).translated(editor.contentOffset()).top()
            if top > height:
                break
            lines.append(block.text())
            block = block.next()
        return "\n".join(lines)

    def text_view(self) -> TextPreview:
        return self._text

    def pdf_view(self) -> PdfPreview:
        return self._pdf
