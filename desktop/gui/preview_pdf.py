"""The PDF side of the preview: one page rendered to fit the pane, with the passage marked.

QtPdf (PDFium) is used for rendering and for the passage's position on the page. PDFium's page
text differs from pypdf's (which the index was built from) in spacing and line breaks, so the
passage is found again in PDFium's text by :func:`locate_passage`; pypdf's offsets are only a
fallback. QPdfSearchModel is deliberately not used: reading its results crashed the interpreter.
"""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPixmap, QResizeEvent
from PySide6.QtPdf import QPdfDocument
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.search.locate import locate_passage

HIGHLIGHT = QColor(255, 226, 80)  # multiplied onto the page: yellow on paper, black text stays
MARGIN = 8  # pixels around the page inside the scroll area
PAD = 1.5  # points added around each selection rectangle, which hug the glyphs tightly
MAX_SCALE = 4.0
MAX_PIXELS = 40_000_000  # a poster-sized page must not allocate gigabytes
RERENDER_MS = 80


def marked_image(picture: QImage, size: QSize, rects: list[QRectF], dpr: float) -> QImage:
    """``picture`` drawn at ``size`` on white paper (a PDF page's paper is transparent), the
    highlight multiplied over ``rects``: yellow on the paper, the ink stays black."""
    image = QImage(size, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    painter.drawImage(QRectF(0, 0, size.width(), size.height()), picture)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
    for rect in rects:
        painter.fillRect(rect, HIGHLIGHT)
    painter.end()
    image.setDevicePixelRatio(dpr)
    return image


def scroll_to_rects(scroll: QScrollArea, image: QImage, rects: list[QRectF]) -> None:
    """Scroll so the highlight is in view: centred when it fits, else its top near the top."""
    bar = scroll.verticalScrollBar()
    if not rects:
        bar.setValue(0)
        return
    dpr = image.devicePixelRatio() or 1.0
    top = min(r.top() for r in rects) / dpr + MARGIN
    bottom = max(r.bottom() for r in rects) / dpr + MARGIN
    view = scroll.viewport().height()
    if bottom - top < view * 0.8:
        bar.setValue(round((top + bottom - view) / 2))
    else:
        bar.setValue(round(top - 24))


def ocr_boxes(lines: list, start: int, end: int) -> list[tuple[float, float, float, float]]:
    """The boxes (fractions of the page) of the OCR'd lines a passage [start, end) covers;
    ``lines`` as the index keeps them, [start, end, x0, y0, x1, y1] each."""
    boxes = []
    for line in lines:
        try:
            a, b, x0, y0, x1, y1 = line
        except (TypeError, ValueError):
            continue
        if a < end and b > start:
            boxes.append((float(x0), float(y0), float(x1), float(y1)))
    return boxes


def pypdf_span(page_text: str, start: int, end: int) -> tuple[int, int] | None:
    """pypdf's offsets (``\\n`` line breaks) mapped onto PDFium's text (``\\r\\n``)."""
    where = [i for i, ch in enumerate(page_text) if ch != "\r"]
    if not where or start >= len(where) or end <= start:
        return None
    return where[max(0, start)], where[min(end, len(where)) - 1] + 1


class PdfPreview(QWidget):
    """A page of an open PDF, fitted to the width of the pane, with page navigation."""

    page_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._doc = QPdfDocument(self)
        self._buffer: QBuffer | None = None
        self._key: object = None
        self._page = 0  # 1-based; 0 while nothing is shown
        self._hit_page = 0
        self._hit_span: tuple[int, int] | None = None  # in PDFium's text of the hit page
        self._hit_boxes: list[tuple[float, float, float, float]] = []  # OCR: page fractions
        self._image = QImage()
        self._rects: list[QRectF] = []
        self._rendered_width = 0
        self._scroll_pending = False

        self._scroll = QScrollArea()
        self._scroll.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self._scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self._scroll.setBackgroundRole(QPalette.ColorRole.Dark)
        self._page_label = QLabel()
        self._page_label.setContentsMargins(MARGIN, MARGIN, MARGIN, MARGIN)
        self._scroll.setWidget(self._page_label)

        self._prev = QToolButton(text="‹", toolTip=self.tr("Previous page"), autoRaise=True)
        self._next = QToolButton(text="›", toolTip=self.tr("Next page"), autoRaise=True)
        self._indicator = QLabel()
        self._prev.clicked.connect(lambda: self.go_to_page(self._page - 1))
        self._next.clicked.connect(lambda: self.go_to_page(self._page + 1))
        nav = QHBoxLayout()
        nav.setContentsMargins(0, 0, 0, 0)
        nav.addStretch()
        for w in (self._prev, self._indicator, self._next):
            nav.addWidget(w)
        nav.addStretch()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._scroll, 1)
        layout.addLayout(nav)

        self._timer = QTimer(self, singleShot=True, interval=RERENDER_MS)
        self._timer.timeout.connect(self._rerender)

    # ---- document ----------------------------------------------------------------------------

    def has_document(self, key: object) -> bool:
        return key is not None and key == self._key

    def load(self, key: object, data: bytes) -> str | None:
        """Open a PDF from its bytes (no file handle stays open); an error message on failure."""
        self.unload()
        buffer = QBuffer(self)
        buffer.setData(QByteArray(data))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self._doc.load(buffer)
        if self._doc.status() != QPdfDocument.Status.Ready or self._doc.pageCount() < 1:
            error = self._doc.error()
            self._doc.close()
            buffer.deleteLater()
            if error == QPdfDocument.Error.IncorrectPassword:
                return self.tr("This PDF is protected by a password and cannot be previewed.")
            if error == QPdfDocument.Error.UnsupportedSecurityScheme:
                return self.tr("This PDF uses an encryption that cannot be previewed.")
            return self.tr("This PDF is damaged and cannot be displayed.")
        self._buffer, self._key = buffer, key
        return None

    def unload(self) -> None:
        self._doc.close()
        if self._buffer is not None:
            self._buffer.deleteLater()
        self._buffer, self._key = None, None
        self._page = self._hit_page = 0
        self._hit_span = None
        self._hit_boxes = []
        self._image, self._rects = QImage(), []
        self._page_label.clear()
        self._indicator.clear()

    def page_count(self) -> int:
        return self._doc.pageCount() if self._key is not None else 0

    # ---- the passage -------------------------------------------------------------------------

    def show_passage(self, page: int, passage: str, start: int, end: int,
                     ocr_lines: list | None = None) -> str | None:
        """Show ``page`` (1-based) with the passage marked; a note when it could not be found.

        ``ocr_lines``: the page was a scan read by OCR, and these are its lines with their
        boxes; the passage is marked by the boxes of its lines (the page has no text to find
        it in)."""
        note = None
        count = self.page_count()
        self._hit_boxes = []
        if ocr_lines is not None and 1 <= page <= count:
            self._hit_span = None
            self._hit_boxes = ocr_boxes(ocr_lines, start, end)
            note = self.tr("Read by OCR from the scanned page: some words may be misread.")
            if not self._hit_boxes:
                note = self.tr("The passage could not be found on this page to highlight it.")
        elif not 1 <= page <= count:
            note = self.tr("Page {page} is no longer in this PDF; it may have changed since it "
                           "was indexed.").format(page=page)
            page = 1
            self._hit_span = None
        else:
            page_text = self._doc.getAllText(page - 1).text()
            self._hit_span = locate_passage(page_text, passage)
            if self._hit_span is None:
                self._hit_span = pypdf_span(page_text, start, end)
                if self._hit_span is not None:
                    note = self.tr("The highlight is approximate: the passage's text differs "
                                   "from the page's.")
                else:
                    note = self.tr("The passage could not be found on this page to highlight it.")
        self._hit_page = page
        self._scroll_pending = True
        self._show_page(page)
        return note

    def go_to_page(self, page: int) -> None:
        if 1 <= page <= self.page_count() and page != self._page:
            self._scroll_pending = page == self._hit_page
            self._show_page(page)
            if page != self._hit_page:
                self._scroll.verticalScrollBar().setValue(0)

    def _show_page(self, page: int) -> None:
        self._page = page
        count = self.page_count()
        self._indicator.setText(self.tr("Page {page} of {count}").format(page=page, count=count))
        self._prev.setEnabled(page > 1)
        self._next.setEnabled(page < count)
        self._render()
        self.page_changed.emit(page)

    # ---- rendering ---------------------------------------------------------------------------

    def _fit_width(self) -> int:
        width = self._scroll.viewport().width() - 2 * MARGIN
        return width if width >= 100 else 600  # not laid out yet: a sensible first guess

    def _render(self) -> None:
        index = self._page - 1
        points = self._doc.pagePointSize(index)
        if points.width() <= 0 or points.height() <= 0:
            self._page_label.setText(self.tr("This page cannot be displayed."))
            self._image, self._rects = QImage(), []
            return
        width = self._fit_width()
        dpr = self.devicePixelRatioF()
        scale = min(width / points.width(), MAX_SCALE) * dpr
        if points.width() * points.height() * scale * scale > MAX_PIXELS:
            scale = (MAX_PIXELS / (points.width() * points.height())) ** 0.5
        size = QSize(max(1, round(points.width() * scale)), max(1, round(points.height() * scale)))
        page_image = self._doc.render(index, size)
        if page_image.isNull():
            self._page_label.setText(self.tr("This page cannot be displayed."))
            self._image, self._rects = QImage(), []
            return
        self._rects = self._highlight_rects(index, scale) if self._page == self._hit_page else []
        self._image = image = marked_image(page_image, size, self._rects, dpr)
        self._rendered_width = width
        self._page_label.setPixmap(QPixmap.fromImage(image))
        self._page_label.adjustSize()
        if self._scroll_pending:
            self._scroll_to_highlight()

    def _highlight_rects(self, index: int, scale: float) -> list[QRectF]:
        if self._hit_boxes:
            points = self._doc.pagePointSize(index)
            width, height = points.width() * scale, points.height() * scale
            pad = PAD * scale
            return [QRectF(x0 * width - pad, y0 * height - pad, (x1 - x0) * width + 2 * pad,
                           (y1 - y0) * height + 2 * pad) for x0, y0, x1, y1 in self._hit_boxes]
        if self._hit_span is None:
            return []
        start, end = self._hit_span
        selection = self._doc.getSelectionAtIndex(index, start, end - start)
        rects = []
        for polygon in selection.bounds():
            r = polygon.boundingRect().adjusted(-PAD, -PAD, PAD, PAD)
            rects.append(QRectF(r.x() * scale, r.y() * scale, r.width() * scale,
                                r.height() * scale))
        return rects

    def _scroll_to_highlight(self) -> None:
        if not self.isVisible():
            return  # the viewport has no real size yet; done again on the first resize
        self._scroll_pending = False
        scroll_to_rects(self._scroll, self._image, self._rects)

    def _rerender(self) -> None:
        if self._page and self._fit_width() != self._rendered_width:
            bar = self._scroll.verticalScrollBar()
            fraction = bar.value() / max(1, bar.maximum())
            self._render()
            if not self._scroll_pending:
                bar.setValue(round(fraction * bar.maximum()))
        elif self._scroll_pending and self._page:
            self._scroll_to_highlight()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._page:
            self._timer.start()

    # ---- for tests and callers ---------------------------------------------------------------

    def current_page(self) -> int:
        return self._page

    def page_indicator(self) -> str:
        return self._indicator.text()

    def highlight_rects(self) -> list[QRectF]:
        return list(self._rects)

    def rendered_image(self) -> QImage:
        return self._image

    def scroll_area(self) -> QScrollArea:
        return self._scroll
