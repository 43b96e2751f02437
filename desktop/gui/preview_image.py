"""The image side of the preview: a photo or scan of text, fitted to the pane, with the lines
OCR read for the passage marked on it.

The image is decoded from its bytes with an allocation limit, so a crafted file that claims
to be a billion pixels is refused with a message, not allowed to take the memory.
"""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QImage, QImageReader, QPalette, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from desktop.gui.preview_pdf import MARGIN, RERENDER_MS, marked_image, scroll_to_rects

MAX_MEGABYTES = 512  # decoded image memory at the most (a 100-megapixel photo needs 400 MB)
PAD = 0.004  # added around each line's box, as a fraction of the image's size


class ImagePreview(QWidget):
    """An image fitted to the width of the pane, with the passage's OCR'd lines marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source = QImage()
        self._boxes: list[tuple[float, float, float, float]] = []
        self._image = QImage()
        self._rects: list[QRectF] = []
        self._rendered_width = 0
        self._scroll = QScrollArea()
        self._scroll.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self._scroll.setBackgroundRole(QPalette.ColorRole.Dark)
        self._label = QLabel()
        self._label.setContentsMargins(MARGIN, MARGIN, MARGIN, MARGIN)
        self._scroll.setWidget(self._label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._scroll, 1)
        self._timer = QTimer(self, singleShot=True, interval=RERENDER_MS)
        self._timer.timeout.connect(self._rerender)

    def load(self, data: bytes, frame: int = 0) -> str | None:
        """Decode an image (a frame of a multi-page TIFF); an error message on failure."""
        self.unload()
        buffer = QBuffer()
        buffer.setData(QByteArray(data))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        reader = QImageReader(buffer)
        reader.setAutoTransform(True)  # a phone photo's EXIF rotation, as OCR saw it
        reader.setAllocationLimit(MAX_MEGABYTES)
        if frame > 0 and not reader.jumpToImage(frame):
            return self.tr("Page {page} is no longer in this image.").format(page=frame + 1)
        image = reader.read()
        if image.isNull():
            if reader.error() == QImageReader.ImageReaderError.InvalidDataError and \
                    "limit" in reader.errorString().lower():
                return self.tr("This image is too large to preview.")
            return self.tr("This image cannot be displayed: {reason}.").format(
                reason=reader.errorString())
        self._source = image
        return None

    def unload(self) -> None:
        self._source, self._image, self._boxes, self._rects = QImage(), QImage(), [], []
        self._label.clear()

    def show_boxes(self, boxes: list[tuple[float, float, float, float]]) -> str | None:
        """Mark these boxes (fractions of the image) and scroll to them; a note for the pane."""
        self._boxes = boxes
        self._render()
        if not boxes:
            return self.tr("The passage could not be found on this image to highlight it.")
        return self.tr("Read by OCR from the image: some words may be misread.")

    # ---- rendering ---------------------------------------------------------------------------

    def _fit_width(self) -> int:
        width = self._scroll.viewport().width() - 2 * MARGIN
        return width if width >= 100 else 600

    def _render(self) -> None:
        if self._source.isNull():
            return
        width = self._fit_width()
        dpr = self.devicePixelRatioF()
        scale = min(width * dpr / self._source.width(), 2.0 * dpr)
        size = QSize(max(1, round(self._source.width() * scale)),
                     max(1, round(self._source.height() * scale)))
        w, h = size.width(), size.height()
        self._rects = [QRectF((x0 - PAD) * w, (y0 - PAD) * h, (x1 - x0 + 2 * PAD) * w,
                              (y1 - y0 + 2 * PAD) * h) for x0, y0, x1, y1 in self._boxes]
        self._image = image = marked_image(self._source, size, self._rects, dpr)
        self._rendered_width = width
        self._label.setPixmap(QPixmap.fromImage(image))
        self._label.adjustSize()
        scroll_to_rects(self._scroll, self._image, self._rects)

    def _rerender(self) -> None:
        if not self._source.isNull() and self._fit_width() != self._rendered_width:
            self._render()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._timer.start()

    # ---- for tests ---------------------------------------------------------------------------

    def highlight_rects(self) -> list[QRectF]:
        return list(self._rects)

    def rendered_image(self) -> QImage:
        return self._image
