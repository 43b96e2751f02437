"""The preview pane against real files: PDFs rendered by QtPdf, text re-extracted by the core.

Screenshots go to ``$SEMDEX_SCREENSHOT_DIR`` when set (to look at them), else to tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtPdf")

from PySide6.QtCore import QRectF, Qt  # noqa: E402
from PySide6.QtGui import QFont, QGuiApplication, QImage  # noqa: E402
from PySide6.QtWidgets import QPushButton, QToolButton  # noqa: E402

from desktop.extract import extract  # noqa: E402
from desktop.gui.preview import PreviewPane  # noqa: E402
from desktop.gui.preview_pdf import pypdf_span  # noqa: E402
from tests.fixtures.documents import (  # noqa: E402
    make_corrupt_pdf,
    make_docx,
    make_encrypted_pdf,
    make_pdf,
)

PASSAGE = "The boiler pressure gauge should read between one and two bar when cold."
HEDGE = "The hedge between our gardens needs trimming before spring."
FILLER = "Nothing about heating here, only filler text for the layout of the page."


def _pdf_pages() -> list[str]:
    page2 = PASSAGE + " If it reads lower, top up with the filling loop.\n\n" + "\n".join(
        f"{FILLER} Line {i}." for i in range(30))
    page3 = "\n".join(f"{FILLER} Row {i}." for i in range(44)) + "\nThe spare fuse is taped " \
        "inside the cover of the consumer unit in the hall."
    return ["First page about the house.", page2, page3, "Last page."]


def _hit(path: Path, page: int, passage: str) -> tuple[int, int]:
    """Offsets of ``passage`` in the core's extracted text of ``page``, as the index has them."""
    section = next(s for s in extract(path, path.read_bytes()).sections if s.page == page)
    start = section.text.index(passage)
    return start, start + len(passage)


def _screenshot(pane: PreviewPane, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("SEMDEX_SCREENSHOT_DIR") or tmp_path)
    assert pane.grab().save(str(folder / name))


def _union(rects: list[QRectF]) -> QRectF:
    out = QRectF(rects[0])
    for r in rects[1:]:
        out = out.united(r)
    return out


def _count(image: QImage, rect: QRectF, test) -> int:
    r = rect.toAlignedRect().intersected(image.rect())
    return sum(test(image.pixelColor(x, y)) for y in range(r.top(), r.bottom(), 2)
               for x in range(r.left(), r.right(), 2))


def _dark(c) -> bool:
    return c.red() < 110 and c.green() < 110 and c.blue() < 110


def _yellow(c) -> bool:
    return c.red() > 200 and c.green() > 180 and c.blue() < 150


@pytest.fixture
def pane(qtbot) -> PreviewPane:
    widget = PreviewPane(launch=False)
    qtbot.addWidget(widget)
    widget.resize(820, 760)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "manual.pdf", _pdf_pages())


def test_pdf_passage_on_page_two_is_highlighted_where_its_text_is(pane, pdf, qtbot, tmp_path):
    start, end = _hit(pdf, 2, PASSAGE)
    pane.show_passage(str(pdf), 2, start, end, PASSAGE, "pdf", query="boiler pressure")
    qtbot.wait(150)  # the first resize re-renders to the real width
    assert pane.message() is None and pane.note() is None
    assert pane.current_page() == 2
    assert pane.pdf_view().page_indicator() == "Page 2 of 4"
    assert pane.location() == "page 2"

    image, rects = pane.rendered_image(), pane.highlight_rects()
    assert not image.isNull() and rects
    assert image.width() > 600  # fitted to the pane, not the page's 612 points
    box = _union(rects)
    assert box.bottom() < image.height() / 4  # the passage opens the page
    assert box.left() < image.width() * 0.2 and box.width() > image.width() * 0.5
    assert _count(image, box, _dark) > 50  # glyphs under the highlight ...
    assert _count(image, box, _yellow) > 50  # ... on yellow paper
    assert _count(image, QRectF(0, box.bottom() + 40, image.width(), 200), _yellow) == 0
    assert image.pixelColor(5, image.height() - 5).name() == "#ffffff"  # white, not transparent
    _screenshot(pane, "preview_pdf.png", tmp_path)

    pane.go_to_page(3)
    assert pane.current_page() == 3 and pane.highlight_rects() == []
    previous = next(b for b in pane.findChildren(QToolButton) if b.toolTip() == "Previous page")
    qtbot.mouseClick(previous, Qt.MouseButton.LeftButton)
    assert pane.current_page() == 2 and pane.highlight_rects()


def test_pdf_passage_low_on_the_page_is_scrolled_into_view_and_follows_resizes(pane, pdf, qtbot):
    passage = "The spare fuse is taped inside the cover of the consumer unit in the hall."
    start, end = _hit(pdf, 3, passage)
    pane.show_passage(str(pdf), 3, start, end, passage, "pdf")
    scroll = pane.pdf_view().scroll_area()
    bar = scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.value() > 0)
    box = _union(pane.highlight_rects())
    assert box.top() > pane.rendered_image().height() * 0.7
    shown_top, shown_bottom = bar.value(), bar.value() + scroll.viewport().height()
    assert shown_top < box.top() and box.bottom() < shown_bottom

    width = pane.rendered_image().width()
    pane.resize(560, 700)
    qtbot.waitUntil(lambda: pane.rendered_image().width() < width - 100)
    assert pane.highlight_rects() and pane.current_page() == 3


def test_pdf_passage_not_on_the_page_shows_the_page_with_a_note(pane, pdf):
    pane.show_passage(str(pdf), 4, 5000, 5100, "Words that are on no page at all.", "pdf")
    assert pane.current_page() == 4 and not pane.rendered_image().isNull()
    assert pane.highlight_rects() == [] and "could not be found" in pane.note()

    pane.show_passage(str(pdf), 9, 0, 10, PASSAGE, "pdf")  # the PDF lost pages since indexing
    assert pane.current_page() == 1 and "Page 9 is no longer" in pane.note()


def test_broken_and_vanished_files_show_a_message(pane, pdf, tmp_path):
    corrupt = make_corrupt_pdf(tmp_path / "broken.pdf")
    pane.show_passage(str(corrupt), 1, 0, 10, "anything", "pdf")
    assert "damaged" in pane.message()
    locked = make_encrypted_pdf(tmp_path / "locked.pdf", "Secret plans.")
    pane.show_passage(str(locked), 1, 0, 13, "Secret plans.", "pdf")
    assert "password" in pane.message()

    pdf.unlink()
    pane.show_passage(str(pdf), 2, 0, 10, PASSAGE, "pdf")
    assert "no longer at" in pane.message() and pane.current_page() is None

    buttons = {b.text(): b for b in pane.findChildren(QPushButton)}
    assert not buttons["Open"].isEnabled() and buttons["Copy path"].isEnabled()

    gone = tmp_path / "gone.txt"
    pane.show_passage(str(gone), None, 0, 5, "hello", "text")
    assert "no longer at" in pane.message()

    pane.clear()
    assert pane.message() and pane.path() == ""


def _lines_file(tmp_path: Path, name: str = "notes.txt") -> tuple[Path, list[str]]:
    lines = [f"line {i:03d}: an ordinary note about nothing much in particular"
             for i in range(1, 201)]
    lines[150] = "line 151: the radiator valves were bled on Sunday and the boiler restarted"
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


def test_text_passage_is_highlighted_and_scrolled_into_view(pane, tmp_path, qtbot):
    path, lines = _lines_file(tmp_path)
    content = path.read_text()
    start = content.index("line 150:")
    end = content.index("\n", content.index("line 152:"))
    pane.show_passage(str(path), None, start, end, content[start:end], "text",
                      query="boiler radiator")
    assert pane.message() is None and pane.note() is None
    assert pane.highlighted_range() == (start, end)
    assert pane.location() == "lines 150–152"
    editor = pane.text_view()
    qtbot.waitUntil(lambda: editor.firstVisibleBlock().blockNumber() > 100)
    assert lines[150] in pane.visible_text() and "line 020:" not in pane.visible_text()
    assert editor.isReadOnly()
    cursor = editor.textCursor()
    cursor.setPosition(content.index("radiator") + 2)
    assert cursor.charFormat().fontWeight() == QFont.Weight.Bold  # a query word in the passage
    _screenshot(pane, "preview_text.png", tmp_path)


def test_changed_text_file_finds_the_passage_again_or_says_so(pane, tmp_path):
    path, lines = _lines_file(tmp_path)
    content = path.read_text()
    passage = lines[150]
    start = content.index(passage)
    path.write_text("A new first line pushed everything down.\n" + content, encoding="utf-8")
    pane.show_passage(str(path), None, start, start + len(passage), passage, "text")
    moved = start + len("A new first line pushed everything down.\n")
    assert pane.highlighted_range() == (moved, moved + len(passage))
    assert "changed since it was indexed" in pane.note()

    path.write_text("Everything was rewritten.\n", encoding="utf-8")
    pane.show_passage(str(path), None, start, start + len(passage), passage, "text")
    assert pane.highlighted_range() is None and "no longer in it" in pane.note()
    assert "Everything was rewritten." in pane.visible_text()


def test_offsets_count_characters_not_utf16_units(pane, tmp_path):
    path = tmp_path / "emoji.md"
    path.write_text("# Party 🎉🎈\n\nBring the cake to the hall at noon.\n", encoding="utf-8")
    content = path.read_text(encoding="utf-8")
    passage = "Bring the cake to the hall at noon."
    start = content.index(passage)
    pane.show_passage(str(path), None, start, start + len(passage), passage, "markdown")
    a, b = pane.highlighted_range()
    cursor = pane.text_view().textCursor()
    cursor.setPosition(a)
    cursor.setPosition(b, cursor.MoveMode.KeepAnchor)
    assert cursor.selectedText() == passage


def test_actions_emit_the_path_and_copy_it(pane, pdf, qtbot):
    start, end = _hit(pdf, 2, PASSAGE)
    pane.show_passage(str(pdf), 2, start, end, PASSAGE, "pdf")
    buttons = {b.text(): b for b in pane.findChildren(QPushButton)}
    with qtbot.waitSignal(pane.open_requested) as opened:
        qtbot.mouseClick(buttons["Open"], Qt.MouseButton.LeftButton)
    assert opened.args == [str(pdf)]
    with qtbot.waitSignal(pane.reveal_requested) as revealed:
        qtbot.mouseClick(buttons["Reveal in folder"], Qt.MouseButton.LeftButton)
    assert revealed.args == [str(pdf)]
    with qtbot.waitSignal(pane.path_copied):
        qtbot.mouseClick(buttons["Copy path"], Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == str(pdf)


def test_docx_is_re_extracted_and_its_passage_highlighted(pane, tmp_path):
    docx = make_docx(tmp_path / "letter.docx", ["Dear neighbour,", HEDGE, "Regards"])
    text = extract(docx, docx.read_bytes()).sections[0].text
    start = text.index(HEDGE)
    pane.show_passage(str(docx), None, start, start + len(HEDGE), HEDGE, "docx", query="hedge")
    assert pane.message() is None and pane.highlighted_range() == (start, start + len(HEDGE))
    assert pane.location() == ""  # lines of extracted text mean nothing in Word


def test_pypdf_offsets_are_mapped_onto_pdfium_text():
    assert pypdf_span("ab\r\ncd", 3, 5) == (4, 6)  # pypdf's offsets skip PDFium's \r
