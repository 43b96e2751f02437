"""OCR of scanned PDF pages and of images: known text rendered to a picture here, read back by
the real engine (RapidOCR's ONNX models, offline), with each line's place on the page."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from desktop.extract import ExtractSettings, Pages, Skipped, extract, extract_file, ocr
from tests.fixtures.documents import image_bytes, scan_image, scanned_pdf_bytes

ROOT = Path(__file__).resolve().parent.parent
PAGE_ONE = ["Invoice 2024-117 for the zebra enclosure",
            "Total due: 4,250 euros by the end of March",
            "The keeper asked for a second water trough"]
PAGE_TWO = ["Minutes of the garden committee meeting",
            "Tomatoes were planted along the southern wall"]
IMAGES_ON = ExtractSettings(ocr_images=True)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _recall(expected: list[str], text: str) -> float:
    """The share of the expected words OCR found (in any order)."""
    want = _words(" ".join(expected))
    got = _words(text)
    return sum(1 for w in want if w in got) / len(want)


def test_ocr_is_installed_with_its_models():
    # a dependency of the app, not an extra: a missing package is a failure, not a skip
    assert ocr.available() is None


def test_a_scanned_page_is_read_in_reading_order_with_the_lines_places():
    page = ocr.read_image(scan_image(PAGE_ONE + ["left column", *[""] * 3], top=200))
    assert _recall(PAGE_ONE, page.text) >= 0.9, page.text
    rows = page.text.split("\n")
    assert "zebra" in rows[0] and "euros" in rows[1] and "trough" in rows[2]  # top to bottom
    for line in page.lines:
        assert page.text[line.start:line.end] == line.text
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    first = next(ln for ln in page.lines if "zebra" in ln.text)
    # drawn at x 150 px, y 200 px of 1700 x 2200, 30 px type
    assert first.box[0] == pytest.approx(150 / 1700, abs=0.02)
    assert first.box[1] == pytest.approx(200 / 2200, abs=0.02)
    assert first.box[3] - first.box[1] < 0.03 and first.score > 0.8


def test_a_row_of_two_columns_reads_left_to_right():
    image = scan_image([""], top=200)
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=30)
    draw.text((900, 400), "right hand side", font=font, fill="black")
    draw.text((150, 404), "left hand side", font=font, fill="black")
    page = ocr.read_image(image)
    assert page.text.index("left") < page.text.index("right") and "\n" not in page.text


def test_a_scanned_pdf_is_read_page_by_page_and_text_pages_are_not():
    data = scanned_pdf_bytes([PAGE_ONE, PAGE_TWO], text_pages={2})
    heard: list[Pages] = []
    doc = extract("scan.pdf", data, progress=heard.append)
    by_page = {s.page: s for s in doc.sections}
    assert set(by_page) == {1, 2}
    assert by_page[1].ocr and _recall(PAGE_ONE, by_page[1].text) >= 0.9
    assert by_page[2].ocr is None and "Tomatoes" in by_page[2].text  # its own text layer
    assert [(p.done, p.total) for p in heard] == [(1, 1)]


def test_with_scans_off_the_person_is_told_where_to_turn_them_on():
    with pytest.raises(Skipped, match="reading scanned pages is off in Settings"):
        extract("scan.pdf", scanned_pdf_bytes([PAGE_ONE]), ExtractSettings(ocr_pdfs=False))


def test_a_blank_scan_is_skipped_as_having_no_text():
    with pytest.raises(Skipped, match="no text"):
        extract("blank.pdf", scanned_pdf_bytes([[""]]))


@pytest.mark.parametrize("fmt, suffix, options", [
    ("PNG", ".png", {}),
    ("JPEG", ".jpg", {"quality": 80}),
    ("WEBP", ".webp", {"quality": 85}),
])
def test_images_are_read_when_asked(fmt, suffix, options):
    data = image_bytes(scan_image(PAGE_TWO, mode="RGB"), fmt, **options)
    with pytest.raises(Skipped, match="reading text in images is off"):
        extract("photo" + suffix, data)
    doc = extract("photo" + suffix, data, IMAGES_ON)
    assert doc.kind == "image" and len(doc.sections) == 1
    assert doc.sections[0].page is None and doc.sections[0].ocr
    assert _recall(PAGE_TWO, doc.sections[0].text) >= 0.9


def test_a_multipage_tiff_gives_a_section_a_page():
    first, second = scan_image(PAGE_ONE), scan_image(PAGE_TWO)
    data = image_bytes(first, "TIFF", save_all=True, append_images=[second],
                       compression="tiff_deflate")
    heard: list[Pages] = []
    doc = extract("fax.tiff", data, IMAGES_ON, progress=heard.append)
    assert [s.page for s in doc.sections] == [1, 2]
    assert _recall(PAGE_TWO, doc.sections[1].text) >= 0.9
    assert [(p.done, p.total) for p in heard] == [(1, 2), (2, 2)]


def test_a_phone_photo_is_turned_the_way_up_it_was_taken():
    upright = scan_image(PAGE_TWO, width=1400, height=500, top=100, mode="RGB")
    stored = upright.rotate(90, expand=True)  # the sensor's way up; EXIF says turn it back
    exif = stored.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to show
    doc = extract("IMG_0001.jpg", image_bytes(stored, "JPEG", exif=exif, quality=90), IMAGES_ON)
    assert _recall(PAGE_TWO, doc.text) >= 0.9


def test_hostile_images_are_refused_with_a_reason():
    from desktop.extract import ExtractionError

    good = image_bytes(scan_image(PAGE_ONE), "PNG")
    with pytest.raises(ExtractionError, match="corrupt image"):
        extract("cut.png", good[: len(good) // 3], IMAGES_ON)
    with pytest.raises(ExtractionError, match="corrupt image"):
        extract("fake.jpg", b"\xff\xd8\xff\xe0 not a JPEG at all" * 20, IMAGES_ON)
    with pytest.raises(Skipped, match="empty file"):
        extract("empty.png", b"", IMAGES_ON)
    from PIL import Image

    # 20,000 x 20,000 pixels in a file of some kilobytes: refused before it is decoded
    bomb = image_bytes(Image.new("1", (20_000, 20_000)), "PNG", optimize=True)
    assert len(bomb) < 200_000
    with pytest.raises(Skipped, match=r"too large: 400 megapixels \(OCR reads images up to "
                                      r"150 megapixels\)"):
        extract("poster.png", bomb, IMAGES_ON)


def test_a_scanned_pdf_in_the_extraction_child_reports_each_page():
    data = scanned_pdf_bytes([PAGE_ONE, PAGE_TWO])
    heard: list[Pages] = []
    doc = extract_file("scan.pdf", data, ExtractSettings(), progress=heard.append)
    assert [s.page for s in doc.sections] == [1, 2] and all(s.ocr for s in doc.sections)
    first = doc.sections[0].ocr[0]  # the lines' places cross the process boundary
    assert first.box[1] == pytest.approx(200 / 2200, abs=0.02)
    assert [(p.done, p.total) for p in heard] == [(1, 2), (2, 2)]
    assert all(p.seconds > 0 for p in heard)


def test_ocr_opens_no_network_connection(tmp_path):
    """In a fresh process (the engine and its models loaded from scratch), with every way out
    to the network made to fail: the page is still read."""
    script = textwrap.dedent("""
        import socket, sys
        def refuse(*args, **kwargs):
            raise SystemExit("OCR tried the network: %r" % (args[1:] or kwargs,))
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        sys.path.insert(0, sys.argv[1])
        from desktop.extract import ocr
        from tests.fixtures.documents import scan_image
        page = ocr.read_image(scan_image(["Offline reading of a scanned page"]))
        assert "Offline" in page.text, page.text
        print("read:", page.text)
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "read: Offline" in proc.stdout


@pytest.mark.parametrize("angle", [180, 90, 270])
def test_a_page_scanned_upside_down_or_sideways_is_turned_to_read(angle):
    lines = PAGE_ONE + PAGE_TWO
    page = ocr.read_image(scan_image(lines).rotate(angle, expand=True))
    assert _recall(lines, page.text) >= 0.9, page.text
    assert page.text.split("\n")[0].startswith("Invoice")  # in its own reading order
    first = next(ln for ln in page.lines if "zebra" in ln.text)
    # the line drawn at the top left of the upright page, where it is on the image as given
    x0, y0, x1, y1 = first.box
    if angle == 180:  # at the bottom right
        assert x1 == pytest.approx(1 - 150 / 1700, abs=0.02)
        assert y1 == pytest.approx(1 - 200 / 2200, abs=0.02)
    elif angle == 90:  # turned left: at the bottom left, running upwards
        assert x0 == pytest.approx(200 / 2200, abs=0.02)
        assert y1 == pytest.approx(1 - 150 / 1700, abs=0.02)
        assert y1 - y0 > 5 * (x1 - x0)
    else:  # turned right: at the top right, running downwards
        assert x1 == pytest.approx(1 - 200 / 2200, abs=0.02)
        assert y0 == pytest.approx(150 / 1700, abs=0.02)
        assert y1 - y0 > 5 * (x1 - x0)


def test_transparent_and_16_bit_images_are_read_as_a_viewer_shows_them():
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=30)
    clear = Image.new("RGBA", (1200, 300), (0, 0, 0, 0))  # black text on nothing
    ImageDraw.Draw(clear).text((50, 100), "Transparent background, black letters",
                               font=font, fill=(0, 0, 0, 255))
    deep = Image.new("I;16", (1200, 300), 65535)  # a 16-bit greyscale scan
    ImageDraw.Draw(deep).text((50, 100), "Sixteen bit greyscale scan", font=font, fill=0)
    for name, image, words in (("logo.png", clear, "Transparent background"),
                               ("scan16.png", deep, "Sixteen bit greyscale")):
        doc = extract(name, image_bytes(image, "PNG"), IMAGES_ON)
        assert words in doc.text, doc.text
