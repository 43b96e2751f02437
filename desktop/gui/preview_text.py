"""The text side of the preview: a read-only editor with line numbers and the passage marked.

The matching that finds a passage again in a text is the core's (desktop.search.locate).
"""

from __future__ import annotations

import re

from PySide6.QtCore import QRect, QSize, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QShowEvent,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

PASSAGE_COLOUR = QColor(255, 241, 140)
QUERY_WORD_COLOUR = QColor(255, 213, 79)
_WORD = re.compile(r"\w+", re.U)


def qt_position(text: str, index: int) -> int:
    """A Python string index as a QTextDocument position, which counts UTF-16 code units."""
    return len(text[:index].encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# The editor
# --------------------------------------------------------------------------------------------


class _Gutter(QWidget):
    def __init__(self, editor: TextPreview) -> None:
        super().__init__(editor)
        self._editor = editor

    def sizeHint(self) -> QSize:
        return QSize(self._editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self._editor.paint_gutter(event)


class TextPreview(QPlainTextEdit):
    """Read-only view of a file's extracted text with the passage [start, end) highlighted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self._gutter = _Gutter(self)
        self._first_line = 1
        self._range: tuple[int, int] | None = None
        self._scroll_pending = False
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self._update_gutter_width()

    # ---- content ---------------------------------------------------------------------------

    def show_text(self, text: str, span: tuple[int, int] | None, *, monospace: bool,
                  query: str = "", first_line: int = 1) -> None:
        """Show ``text`` with ``span`` (Python indices into it) highlighted and in view."""
        self._first_line = first_line
        font = (QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont) if monospace
                else QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont))
        self.document().setDefaultFont(font)
        self.setFont(font)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap if monospace
                             else QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.document().setUndoRedoEnabled(False)
        self.setPlainText(text)
        self._update_gutter_width()
        if span is None:
            self._range = None
            self.setExtraSelections([])
            self.moveCursor(QTextCursor.MoveOperation.Start)
            return
        start, end = qt_position(text, span[0]), qt_position(text, span[1])
        self._range = (start, end)
        self.setExtraSelections(self._selections(text, span, start, end, query))
        self._scroll_pending = True
        self._scroll_to_passage()

    def clear_text(self) -> None:
        self._range = None
        self._scroll_pending = False
        self.setExtraSelections([])
        self.clear()

    def highlighted_range(self) -> tuple[int, int] | None:
        return self._range

    def _selections(self, text: str, span: tuple[int, int], start: int, end: int,
                    query: str) -> list[QTextEdit.ExtraSelection]:
        """The passage's background, plus query words in it: a deeper yellow and bold.

        Extra selections cannot change the font (they are painted over a finished layout), so
        the bold goes into the document itself, which is rebuilt for every passage anyway.
        """
        out = [self._selection(start, end, PASSAGE_COLOUR)]
        words = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
        if not words:
            return out
        alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
        pattern = re.compile(rf"\b(?:{alternatives})\w*", re.I | re.U)
        bold = QTextCharFormat()
        bold.setFontWeight(QFont.Weight.Bold)
        passage = text[span[0]:span[1]]
        for m in pattern.finditer(passage):
            a, b = start + qt_position(passage, m.start()), start + qt_position(passage, m.end())
            selection = self._selection(a, b, QUERY_WORD_COLOUR)
            selection.cursor.mergeCharFormat(bold)
            out.append(selection)
        return out

    def _selection(self, start: int, end: int, colour: QColor) -> QTextEdit.ExtraSelection:
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        fmt = QTextCharFormat()
        fmt.setBackground(colour)
        selection = QTextEdit.ExtraSelection()
        selection.cursor = cursor
        selection.format = fmt
        return selection

    def _scroll_to_passage(self) -> None:
        """Centre a short passage; show a long one from its first line."""
        if self._range is None or not self.isVisible():
            return  # done on show, when the viewport has its real size
        self._scroll_pending = False
        start, end = self._range
        cursor = QTextCursor(self.document())
        first = self.document().findBlock(start).blockNumber()
        last = self.document().findBlock(max(start, end - 1)).blockNumber()
        visible = max(1, self.viewport().height() // max(1, self.fontMetrics().lineSpacing()))
        if last - first + 1 < visible - 2:
            cursor.setPosition((start + end) // 2)
            self.setTextCursor(cursor)
            self.centerCursor()
        else:
            self.verticalScrollBar().setValue(max(0, first - 2))
        cursor.setPosition(start)
        self.setTextCursor(cursor)  # keyboard navigation starts at the passage

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._scroll_pending:
            QTimer.singleShot(0, self._scroll_to_passage)

    # ---- line numbers ------------------------------------------------------------------------

    def gutter_width(self) -> int:
        last = self._first_line + max(1, self.blockCount()) - 1
        return 10 + self.fontMetrics().horizontalAdvance("9") * len(str(last))

    def _update_gutter_width(self, _count: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_gutter_width()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        cr = self.contentsRect()
        self._gutter.setGeometry(QRect(cr.left(), cr.top(), self.gutter_width(), cr.height()))

    def paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self._gutter)
        palette = self.palette()
        painter.fillRect(event.rect(), palette.alternateBase())
        painter.setPen(palette.placeholderText().color())
        painter.setFont(self.font())
        height = self.fontMetrics().height()
        width = self._gutter.width() - 5
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        while block.isValid() and top <= event.rect().bottom():
            bottom = top + round(self.blockBoundingRect(block).height())
            if block.isVisible() and bottom >= event.rect().top():
                number = str(block.blockNumber() + self._first_line)
                painter.drawText(0, top, width, height, Qt.AlignmentFlag.AlignRight, number)
            block = block.next()
            top = bottom
        painter.end()
