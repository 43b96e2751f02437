"""The results list: a model of hits and a delegate that draws each one as a small card.

A row shows the file name and score, the folder and where in the file (page or lines), and a
snippet with the query's words in bold. The snippet's HTML is made once per result set, not on
every paint; painting only lays it out in a QTextDocument.
"""

from __future__ import annotations

import html
import os
import re
from typing import Any

from PySide6.QtCore import (
    QT_TRANSLATE_NOOP,
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QFont,
    QFontMetrics,
    QPainter,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from desktop.extract.kinds import SECTION_WORDS
from desktop.search import Hit
from desktop.search.display import score_text, short_folder, snippet

HIT_ROLE = Qt.ItemDataRole.UserRole + 1
SNIPPET_ROLE = Qt.ItemDataRole.UserRole + 2  # HTML, query words in <b>
LOCATION_ROLE = Qt.ItemDataRole.UserRole + 3  # "page 2" / "lines 4–9"
FOLDER_ROLE = Qt.ItemDataRole.UserRole + 4
SCORE_ROLE = Qt.ItemDataRole.UserRole + 5

_WORD = re.compile(r"\w+", re.U)
_PAD = 8
_SNIPPET_LINES = 3


# Words too common to be worth marking in a snippet (English; others are marked if 3+ long).
_COMMON = frozenset("""
a an and are as at be but by can could did do does for from had has have how i if in into is
it its me my no not of on or our should so than that the their them then there they this to
was we were what when where which who why will with would you your about
""".split())


def query_words(query: str) -> list[str]:
    """The words of a query worth marking, longest first."""
    words = {w.lower() for w in _WORD.findall(query)}
    keep = {w for w in words if w not in _COMMON and (len(w) > 2 or w.isdigit())}
    return sorted(keep or {w for w in words if len(w) > 1}, key=len, reverse=True)


def emphasise(text: str, query: str) -> str:
    """HTML of `text` with the words of `query` (and words they begin) in bold."""
    words = query_words(query)
    if not words:
        return html.escape(text)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\w*",
                         re.IGNORECASE | re.U)
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(html.escape(text[last:m.start()]))
        out.append(f"<b>{html.escape(m.group(0))}</b>")
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


# the core's section words (desktop.extract.kinds.SECTION_WORDS), translatable
_SECTION_PLACES = {
    "page": QT_TRANSLATE_NOOP("ResultsModel", "page {0}"),
    "slide": QT_TRANSLATE_NOOP("ResultsModel", "slide {0}"),
    "sheet": QT_TRANSLATE_NOOP("ResultsModel", "sheet {0}"),
    "chapter": QT_TRANSLATE_NOOP("ResultsModel", "chapter {0}"),
    "message": QT_TRANSLATE_NOOP("ResultsModel", "message {0}"),
    "cell": QT_TRANSLATE_NOOP("ResultsModel", "cell {0}"),
    "part": QT_TRANSLATE_NOOP("ResultsModel", "part {0}"),
}


def location_word(kind: str, page: int) -> str:
    """"page 3", "slide 2": a section of a file, in the person's language."""
    word = SECTION_WORDS.get(kind, "part")
    return QApplication.translate("ResultsModel", _SECTION_PLACES[word]).format(page)


def location(hit: Hit) -> str:
    if not hit.ocr:
        return _place(hit)
    # read from a scan or a photo: the words may be misread
    if hit.kind == "image" and not hit.page:
        return QApplication.translate("ResultsModel", "text read by OCR")
    return QApplication.translate("ResultsModel", "{0} · OCR").format(_place(hit))


def _place(hit: Hit) -> str:
    if hit.page:
        return location_word(hit.kind, hit.page)
    if hit.line_start and hit.line_end and hit.line_end != hit.line_start:
        return QApplication.translate("ResultsModel", "lines {0}–{1}").format(
            hit.line_start, hit.line_end)
    return QApplication.translate("ResultsModel", "line {0}").format(hit.line_start or 1)


class ResultsModel(QAbstractListModel):
    """Hits of the latest search, in rank order."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self._hits: list[Hit] = []
        self._snippets: list[str] = []
        self.query = ""
        self.mode = "hybrid"

    def set_results(self, query: str, hits: list[Hit], mode: str = "hybrid") -> None:
        self.beginResetModel()
        self.query, self.mode = query, mode
        self._hits = list(hits)
        self._snippets = [emphasise(snippet(h.text, query), query) for h in hits]
        self.endResetModel()

    def clear(self) -> None:
        self.set_results("", [])

    def hit(self, row: int) -> Hit:
        return self._hits[row]

    def hits(self) -> list[Hit]:
        return list(self._hits)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._hits)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._hits):
            return None
        hit = self._hits[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(hit.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{hit.path}\n{location(hit)} · {self._score_tip(hit)}"
        if role == HIT_ROLE:
            return hit
        if role == SNIPPET_ROLE:
            return self._snippets[index.row()]
        if role == LOCATION_ROLE:
            return location(hit)
        if role == FOLDER_ROLE:
            return short_folder(hit.path)
        if role == SCORE_ROLE:
            return score_text(hit.score, self.mode)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{os.path.basename(hit.path)}, {location(hit)}"
        return None

    def _score_tip(self, hit: Hit) -> str:
        tr = QApplication.translate
        text = score_text(hit.score, self.mode)
        if self.mode == "hybrid":
            return tr("ResultsModel", "score {0} (1.00: first by meaning and by keywords)"
                      ).format(text)
        if self.mode == "keyword":
            return tr("ResultsModel", "keyword score (BM25) {0}").format(text)
        return tr("ResultsModel", "similarity {0}").format(text)


class ResultDelegate(QStyledItemDelegate):
    """Draws a hit as: name and score / folder and place / snippet with the query in bold."""

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        title = QFont(option.font)
        title.setBold(True)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, option.font.pointSizeF() * 0.9))
        return title, small

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        title, small = self._fonts(option)
        h = (QFontMetrics(title).height() + QFontMetrics(small).height()
             + QFontMetrics(option.font).lineSpacing() * _SNIPPET_LINES + 3 * _PAD)
        return QSize(200, h)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)

        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        group = QPalette.ColorGroup.Normal
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        text_color = opt.palette.color(group, text_role)
        muted = (QPalette.ColorRole.HighlightedText if selected
                 else QPalette.ColorRole.PlaceholderText)
        muted_color = opt.palette.color(group, muted)
        title, small = self._fonts(opt)
        r = opt.rect.adjusted(_PAD + 2, _PAD, -_PAD - 2, -_PAD)

        painter.save()
        painter.setClipRect(opt.rect)
        fm_title, fm_small = QFontMetrics(title), QFontMetrics(small)
        score = index.data(SCORE_ROLE)
        score_w = fm_small.horizontalAdvance(score) + _PAD
        painter.setFont(small)
        painter.setPen(muted_color)
        painter.drawText(QRect(r.right() - score_w, r.top(), score_w, fm_title.height()),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, score)
        painter.setFont(title)
        painter.setPen(text_color)
        name = fm_title.elidedText(str(index.data()), Qt.TextElideMode.ElideMiddle,
                                   r.width() - score_w)
        painter.drawText(QRect(r.left(), r.top(), r.width() - score_w, fm_title.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)

        y = r.top() + fm_title.height() + 2
        place = f"{index.data(LOCATION_ROLE)}  ·  "
        painter.setFont(small)
        painter.setPen(muted_color)
        folder = fm_small.elidedText(str(index.data(FOLDER_ROLE)), Qt.TextElideMode.ElideMiddle,
                                     r.width() - fm_small.horizontalAdvance(place))
        painter.drawText(QRect(r.left(), y, r.width(), fm_small.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         place + folder)

        y += fm_small.height() + _PAD // 2
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(opt.font)
        doc.setHtml(str(index.data(SNIPPET_ROLE) or ""))
        doc.setTextWidth(r.width())
        height = r.bottom() - y
        painter.translate(r.left(), y)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        ctx.palette.setColor(QPalette.ColorRole.Text, text_color)
        ctx.clip = QRect(0, 0, r.width(), height)
        painter.setClipRect(ctx.clip, Qt.ClipOperation.IntersectClip)
        doc.documentLayout().draw(painter, ctx)
        painter.restore()
