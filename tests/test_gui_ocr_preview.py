"""The preview of text read by OCR: the scanned PDF page and the photo shown with the passage's
lines highlighted where OCR found them, and a note that the words may be misread.

Screenshots go to ``$SEMDEX_SCREENSHOT_DIR`` when set (to look at them), else to tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtPdf")

from PySide6.QtCore import QRectF  # noqa: E402

from desktop.extract import ExtractSettings, extract  # noqa: E402
from desktop.gui.preview import PreviewPane  # noqa: E402
from tests.fixtures.documents import image_bytes, scan_image, scanned_pdf_bytes  # noqa: E402

LINES = ["Invoice 2024-117 for the zebra enclosure",
         "Total due: 4,250 euros by the end of March",
         "The keeper asked for a second water trough",
         "", "", "Signed by the head keeper of the zoo"]


def _stored(section) -> list[list[float]]:
    """A section's OCR lines as the index keeps them: [start, end, x0, y0, x1, y1]."""
    return [[ln.start, ln.end, *ln.box] for ln in section.ocr]


def _screenshot(pane: PreviewPane, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("SEMDEX_SCREENSHOT_DIR") or tmp_path)
    assert pane.grab().save(str(folder / name))


def _yellow_share(pane: PreviewPane, rect: QRectF) -> float:
    image = pane.rendered_image()
    r = rect.toAlignedRect().intersected(image.rect())
    points = [(x, y) for y in range(r.top(), r.bottom(), 2) for x in range(r.left(), r.right(), 2)]
    yellow = sum(1 for x, y in points if (c := image.pixelColor(x, y)).red() > 200
                 and c.green() > 180 and c.blue() < 160)
    return yellow / max(1, len(points))


@pytest.fixture
def pane(qtbot) -> PreviewPane:
    widget = PreviewPane(launch=False)
    qtbot.addWidget(widget)
    widget.resize(820, 760)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _passage(section, first: str, last: str) -> tuple[int, int, str]:
    start = section.text.index(first)
    end = section.text.index(last) + len(last)
    return start, end, section.text[start:end]


def test_a_passage_of_a_scanned_page_is_highlighted_on_the_scan(pane, qtbot, tmp_path):
    pdf = tmp_path / "letter-scan.pdf"
    pdf.write_bytes(scanned_pdf_bytes([["A cover page of the letter"], LINES]))
    section = next(s for s in extract(pdf.name, pdf.read_bytes()).sections if s.page == 2)
    start, end, text = _passage(section, "Total due", "trough")
    pane.show_passage(str(pdf), 2, start, end, text, "pdf", ocr_lines=_stored(section))
    qtbot.wait(150)
    assert pane.current_page() == 2 and pane.message() is None
    assert "Read by OCR" in (pane.note() or "")
    rects = pane.highlight_rects()
    assert len(rects) == 2  # the passage's two lines, not the invoice line above them
    image = pane.rendered_image()
    top = min(r.top() for r in rects) / image.height()
    bottom = max(r.bottom() for r in rects) / image.height()
    # drawn at 260 and 320 px of a 2,200 px page
    assert 0.10 < top < 0.125 and 0.14 < bottom < 0.175, (top, bottom)
    assert all(_yellow_share(pane, r) > 0.5 for r in rects)
    _screenshot(pane, "preview_pdf_ocr.png", tmp_path)


def test_a_passage_of_a_photo_is_highlighted_on_the_photo(pane, qtbot, tmp_path):
    photo = tmp_path / "whiteboard.jpg"
    photo.write_bytes(image_bytes(scan_image(LINES, width=1600, height=1000, mode="RGB"),
                                  "JPEG", quality=85))
    doc = extract(photo.name, photo.read_bytes(), ExtractSettings(ocr_images=True))
    section = doc.sections[0]
    start, end, text = _passage(section, "Signed", "zoo")
    pane.show_passage(str(photo), None, start, end, text, "image", ocr_lines=_stored(section))
    qtbot.wait(150)
    assert pane.message() is None and "Read by OCR" in (pane.note() or "")
    rects = pane.highlight_rects()
    assert len(rects) == 1
    image = pane.rendered_image()
    assert image.width() > 600  # fitted to the pane
    top = rects[0].top() / image.height()
    assert 0.48 < top < 0.52, top  # the last line, drawn at 500 px of 1,000
    assert _yellow_share(pane, rects[0]) > 0.5
    _screenshot(pane, "preview_image_ocr.png", tmp_path)


def test_an_image_that_cannot_be_shown_says_so(pane, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    pane.show_passage(str(broken), None, 0, 5, "hello", "image", ocr_lines=[])
    assert "cannot be displayed" in (pane.message() or "")
