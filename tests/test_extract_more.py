"""EPUB, RTF, e-mail, mbox, notebook and CSV/TSV extraction, each fed files built here."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
import zipfile
from email.message import EmailMessage

import pytest

from desktop.extract.ebook import extract_epub
from desktop.extract.mail import MAX_DEPTH, extract_eml, extract_mbox, split_mbox
from desktop.extract.model import Document, ExtractionError, Skipped
from desktop.extract.notebook import extract_ipynb
from desktop.extract.rtf import extract_rtf
from desktop.extract.table import extract_csv

# --- EPUB ------------------------------------------------------------------------------------

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>"""

OPF = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Tea</dc:title></metadata>
  <manifest>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="cover" href="images/cover.jpg" media-type="image/jpeg"/>
    <item id="c2" href="Text/chapter%202.xhtml" media-type="application/xhtml+xml"/>
    <item id="c1" href="Text/ch1.xhtml" media-type="application/xhtml+xml"/>
    <item id="blank" href="Text/blank.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine toc="ncx">
    <itemref idref="c1"/>
    <itemref idref="blank"/>
    <itemref idref="c2"/>
  </spine>
</package>"""

NCX = """<?xml version="1.0" encoding="utf-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">
  <navMap>
    <navPoint id="p1" playOrder="1">
      <navLabel><text>The Harvest</text></navLabel>
      <content src="Text/ch1.xhtml#start"/>
    </navPoint>
  </navMap>
</ncx>"""

NAV = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Contents</title></head>
<body><nav epub:type="toc"><ol>
  <li><a href="Text/ch1.xhtml">The&nbsp;Harvest (nav)</a></li>
</ol></nav></body></html>"""

CHAPTER_1 = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Tea, a history</title></head>
<body><h1>One</h1><p>Leaves are picked at dawn in the hills.</p>
<p>They wither on bamboo trays.</p></body></html>"""

CHAPTER_2 = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Tea, a history</title></head>
<body><section><h2>Rolling &amp; drying</h2><p>The leaves are rolled by hand.</p></section>
</body></html>"""

BLANK = """<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title></head>
<body><div><img src="../images/cover.jpg"/></div></body></html>"""


def make_epub(*, nav: bool = True, ncx: bool = True, extra: dict[str, str] | None = None,
              opf: str = OPF) -> bytes:
    parts: dict[str, str | bytes] = {
        "META-INF/container.xml": CONTAINER,
        "OEBPS/content.opf": opf,
        "OEBPS/images/cover.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
        "OEBPS/Text/ch1.xhtml": CHAPTER_1,
        "OEBPS/Text/chapter 2.xhtml": CHAPTER_2,  # named URL-escaped in the manifest
        "OEBPS/Text/blank.xhtml": BLANK,
    }
    if ncx:
        parts["OEBPS/toc.ncx"] = NCX
    if nav:
        parts["OEBPS/nav.xhtml"] = NAV
    parts.update(extra or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_epub_chapters_in_spine_order_with_titles():
    document = extract_epub(make_epub(nav=False))
    assert document.kind == "epub"
    # the blank spine item (position 2) is skipped, but keeps its number
    assert [section.page for section in document.sections] == [1, 3]
    first, second = (section.text for section in document.sections)
    assert first.splitlines()[0] == "Chapter 1: The Harvest"  # from the NCX
    assert "Leaves are picked at dawn in the hills." in first
    assert "They wither on bamboo trays." in first
    assert "Tea, a history" not in first  # <head><title> is not chapter text
    assert second.splitlines()[0] == "Chapter 3: Rolling & drying"  # its first heading
    assert "The leaves are rolled by hand." in second


def test_epub_nav_document_titles_win_over_the_ncx():
    document = extract_epub(make_epub(nav=True, ncx=True))
    assert document.sections[0].text.splitlines()[0] == "Chapter 1: The Harvest (nav)"


def test_epub_without_any_table_of_contents_or_heading():
    opf = OPF.replace('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>',
                      "").replace(' properties="nav"', "").replace(' toc="ncx"', "")
    book = make_epub(nav=False, ncx=False, opf=opf,
                     extra={"OEBPS/Text/ch1.xhtml": "<html><body><p>Just words.</p></body></html>"})
    document = extract_epub(book)
    assert document.sections[0].text.splitlines()[0] == "Chapter 1"
    assert document.sections[1].text.splitlines()[0] == "Chapter 3: Rolling & drying"


ENCRYPTION = """<?xml version="1.0"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
            xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
  <enc:EncryptedData>
    <enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
    <enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData>
  </enc:EncryptedData>
</encryption>"""


def test_epub_with_drm_is_refused():
    book = make_epub(extra={"META-INF/encryption.xml":
                            ENCRYPTION.format(uri="OEBPS/Text/ch1.xhtml")})
    with pytest.raises(ExtractionError) as caught:
        extract_epub(book)
    assert caught.value.reason == "encrypted EPUB (DRM)"


def test_epub_with_only_obfuscated_fonts_is_read():
    book = make_epub(extra={"META-INF/encryption.xml":
                            ENCRYPTION.format(uri="OEBPS/fonts/Serif.otf")})
    assert "Leaves are picked" in extract_epub(book).text


def test_epub_broken_inputs():
    with pytest.raises(ExtractionError, match="corrupt EPUB: not a zip archive"):
        extract_epub(b"this is not a zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
    with pytest.raises(ExtractionError, match="no package document"):
        extract_epub(buffer.getvalue())


def test_epub_of_images_only_is_skipped():
    opf = OPF.replace('<itemref idref="c1"/>', "").replace('<itemref idref="c2"/>', "")
    with pytest.raises(Skipped):
        extract_epub(make_epub(opf=opf))


# --- RTF -------------------------------------------------------------------------------------

RTF = (
    r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss\fcharset0 Arial;}}"
    r"{\colortbl ;\red255\green0\blue0;}"
    "\n"
    r"\f0\fs24 Caf\'e9 receipts for the \b board\b0  meeting.\par"
    "\n"
    r"Total: 12 \u8364? paid \u-10179?\u-8704? today.\par"
    "\n}"
)


def test_rtf_text_with_escapes():
    document = extract_rtf(RTF.encode("ascii"))
    assert document.kind == "rtf"
    assert len(document.sections) == 1 and document.sections[0].page is None
    assert document.text.splitlines() == [
        "Café receipts for the board meeting.",
        "Total: 12 € paid \U0001f600 today.",
    ]
    assert "Arial" not in document.text and "red255" not in document.text


def test_rtf_rejects_other_files_and_skips_empty_ones():
    with pytest.raises(ExtractionError) as caught:
        extract_rtf(b"%PDF-1.7 not rtf at all")
    assert caught.value.reason.startswith("corrupt RTF: ")
    with pytest.raises(Skipped):
        extract_rtf(rb"{\rtf1\ansi{\fonttbl{\f0 Arial;}}}")


def test_rtf_a_long_line_of_unclosed_fields_is_quick():
    """striprtf's hyperlink expression backtracks for minutes on this; ours is linear."""
    fields = b"".join(b'{\\field{\\*\\fldinst{HYPERLINK "http://x/%d" text ' % i
                      for i in range(3000))
    started = time.monotonic()
    with pytest.raises(Skipped):
        extract_rtf(b"{\\rtf1\\ansi " + fields + b"}")
    assert time.monotonic() - started < 5


# --- e-mail ----------------------------------------------------------------------------------


def make_mail() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ada Lovelace <ada@example.org>"
    message["To"] = "Charles Babbage <charles@example.org>"
    message["Date"] = "Tue, 02 Jan 2024 09:30:00 +0000"
    message["Subject"] = "Notes on the analytical engine"
    message.set_content("Dear Charles,\nThe engine weaves algebraic patterns.\nAda\n")
    message.add_attachment(b"Bernoulli numbers, step by step.\n", maintype="text",
                           subtype="plain", filename="notes.txt")
    message.add_attachment(b"\x89PNG\r\n\x1a\n\x00\x00", maintype="image", subtype="png",
                           filename="diagram.png")
    return message


def test_eml_headers_body_and_attachments():
    document = extract_eml(make_mail().as_bytes())
    assert document.kind == "email"
    assert len(document.sections) == 1 and document.sections[0].page is None
    lines = document.text.splitlines()
    assert lines[:4] == [
        "From: Ada Lovelace <ada@example.org>",
        "To: Charles Babbage <charles@example.org>",
        "Date: Tue, 02 Jan 2024 09:30:00 +0000",
        "Subject: Notes on the analytical engine",
    ]
    assert "The engine weaves algebraic patterns." in document.text
    assert "Attachment: notes.txt\nBernoulli numbers, step by step." in document.text
    assert "Attachment: diagram.png (not indexed: an image" in document.text
    assert document.text.index("Dear Charles") < document.text.index("Attachment: notes.txt")


def test_eml_html_only_body_goes_through_the_html_extractor():
    message = EmailMessage()
    message["From"] = "news@example.org"
    message["Subject"] = "=?utf-8?q?Caf=C3=A9_news?="
    message.set_content("<html><head><style>p {color: red}</style></head><body>"
                        "<p>Opening hours</p><p>Monday&nbsp;to Friday</p></body></html>",
                        subtype="html")
    text = extract_eml(message.as_bytes()).text
    assert "Subject: Café news" in text
    assert "Opening hours\n\nMonday\xa0to Friday" in text
    assert "<p>" not in text and "color: red" not in text


def test_eml_prefers_plain_text_over_its_html_alternative():
    message = EmailMessage()
    message["Subject"] = "Both"
    message.set_content("plain version")
    message.add_alternative("<p>html version</p>", subtype="html")
    text = extract_eml(message.as_bytes()).text
    assert "plain version" in text and "html version" not in text


def test_eml_attached_messages_nest_until_the_depth_limit():
    inner = make_mail()
    for level in range(MAX_DEPTH + 1):
        outer = EmailMessage()
        outer["Subject"] = f"Forward {level}"
        outer.set_content(f"forwarding level {level}")
        outer.add_attachment(inner)
        inner = outer
    text = extract_eml(inner.as_bytes()).text
    assert "forwarding level 3" in text and "forwarding level 1" in text
    assert "forwarding level 0" not in text  # the fourth message down
    assert "(not indexed: nested too deeply)" in text


def test_eml_attached_eml_files_count_towards_the_depth_through_the_dispatcher(monkeypatch):
    """An .eml attached as a file comes back through desktop.extract.extract; the depth is
    carried across that call, so a chain of them stops too."""
    import desktop.extract

    real = desktop.extract.extract

    def dispatch(name, data):
        return extract_eml(data) if str(name).endswith(".eml") else real(name, data)

    monkeypatch.setattr(desktop.extract, "extract", dispatch)
    inner = make_mail().as_bytes()
    for level in range(MAX_DEPTH + 1):
        outer = EmailMessage()
        outer["Subject"] = f"Forward {level}"
        outer.set_content(f"forwarding level {level}")
        outer.add_attachment(inner, maintype="application", subtype="octet-stream",
                             filename=f"level{level - 1}.eml")
        inner = outer.as_bytes()
    text = extract_eml(inner).text
    assert "Attachment: level2.eml\n" in text and "forwarding level 1" in text
    assert "forwarding level 0" not in text
    assert "Attachment: level0.eml (not indexed: nested too deeply)" in text


def test_eml_without_anything_is_skipped():
    with pytest.raises(Skipped):
        extract_eml(b"\n\n")


MBOX = b"""From ada@example.org Tue Jan  2 09:30:00 2024
From: Ada <ada@example.org>
To: Charles <charles@example.org>
Subject: First
Date: Tue, 02 Jan 2024 09:30:00 +0000

The first message.
>From the workshop, with love.

From charles@example.org Wed Jan  3 10:00:00 2024
From: Charles <charles@example.org>
Subject: Second

The second message.

From ada@example.org Thu Jan  4 11:15:00 2024
From: Ada <ada@example.org>
Subject: Third
Content-Type: text/html; charset=utf-8

<p>The third message, in <b>HTML</b>.</p>
"""


def test_mbox_one_section_per_message():
    document = extract_mbox(MBOX)
    assert document.kind == "mbox"
    assert [section.page for section in document.sections] == [1, 2, 3]
    first, second, third = (section.text for section in document.sections)
    assert first.startswith("From: Ada <ada@example.org>\nTo: Charles <charles@example.org>")
    assert "Subject: First" in first
    assert "The first message.\nFrom the workshop, with love." in first  # unescaped
    assert ">From" not in first
    assert "Subject: Second" in second and "The second message." in second
    assert "The third message, in HTML." in third


def test_mbox_split_keeps_unescaped_sentences_and_crlf():
    data = MBOX.replace(b">From the workshop", b"\nFrom the workshop").replace(b"\n", b"\r\n")
    assert len(split_mbox(data)) == 3


def test_mbox_empty_is_skipped():
    with pytest.raises(Skipped):
        extract_mbox(b"")


# --- notebooks -------------------------------------------------------------------------------

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(200))).decode()


def make_notebook() -> dict:
    return {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "markdown", "metadata": {},
             "source": ["# Rainfall study\n", "Monthly totals for *Lisbon*."]},
            {"cell_type": "code", "metadata": {}, "execution_count": 1,
             "source": "print('total', 42)\nplot(rain)",
             "outputs": [
                 {"output_type": "stream", "name": "stdout", "text": ["total 42\n"]},
                 {"output_type": "display_data", "metadata": {},
                  "data": {"image/png": PNG, "text/plain": ["<Figure size 640x480>"]}},
                 {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                  "data": {"text/plain": "array([1, 2, 3])"}},
             ]},
            {"cell_type": "code", "metadata": {}, "source": [], "outputs": []},
            {"cell_type": "code", "metadata": {}, "source": "1/0", "outputs": [
                {"output_type": "error", "ename": "ZeroDivisionError",
                 "evalue": "division by zero", "traceback": ["\x1b[31mTraceback..."]}]},
        ],
    }


def test_notebook_cells_and_text_outputs():
    document = extract_ipynb(json.dumps(make_notebook()).encode())
    assert document.kind == "notebook"
    assert [section.page for section in document.sections] == [1, 2, 4]  # cell 3 is empty
    markdown, code, error = (section.text for section in document.sections)
    assert markdown == "Cell 1 (markdown)\n# Rainfall study\nMonthly totals for *Lisbon*."
    assert code.startswith("Cell 2 (code)\nprint('total', 42)\nplot(rain)\nOutput:\n")
    assert "total 42" in code and "array([1, 2, 3])" in code
    assert "<Figure size 640x480>" in code
    assert PNG[:40] not in document.text and "image/png" not in document.text
    assert error == "Cell 4 (code)\n1/0\nOutput:\nZeroDivisionError: division by zero"
    assert "Traceback" not in document.text


def test_notebook_format_3_worksheets():
    notebook = {"nbformat": 3, "worksheets": [{"cells": [
        {"cell_type": "heading", "level": 1, "source": ["Old notebook"]},
        {"cell_type": "code", "input": ["x = 1\n", "x"], "language": "python", "outputs": [
            {"output_type": "pyout", "text": ["1"], "png": PNG}]},
    ]}]}
    document = extract_ipynb(json.dumps(notebook).encode())
    assert [section.text for section in document.sections] == [
        "Cell 1 (markdown)\nOld notebook",
        "Cell 2 (code)\nx = 1\nx\nOutput:\n1",
    ]


def test_notebook_broken_and_empty():
    with pytest.raises(ExtractionError) as caught:
        extract_ipynb(b'{"cells": [')
    assert caught.value.reason.startswith("corrupt notebook: ")
    with pytest.raises(ExtractionError, match="corrupt notebook"):
        extract_ipynb(b"[1, 2, 3]")
    empty = {"nbformat": 4, "cells": [{"cell_type": "code", "source": "", "outputs": []}]}
    with pytest.raises(Skipped):
        extract_ipynb(json.dumps(empty).encode())


# --- CSV / TSV -------------------------------------------------------------------------------


def rows(document: Document) -> list[str]:
    assert document.kind == "csv"
    assert len(document.sections) == 1 and document.sections[0].page is None
    return document.text.splitlines()


def test_csv_with_a_header_names_each_value():
    data = (b"city,country,population\r\n"
            b"Lisbon,Portugal,545000\r\n"
            b"Porto,,232000\r\n")
    assert rows(extract_csv(data)) == [
        "Columns: city | country | population",
        "Row 2: city: Lisbon; country: Portugal; population: 545000",
        "Row 3: city: Porto; population: 232000",
    ]


def test_csv_quoted_fields_with_commas_and_newlines():
    data = (b'name,notes\n'
            b'"Smith, Jane","likes tea,\nand cake"\n'
            b'"O\'Brien","said ""hello"""\n')
    assert rows(extract_csv(data)) == [
        "Columns: name | notes",
        "Row 2: name: Smith, Jane; notes: likes tea, and cake",
        "Row 3: name: O'Brien; notes: said \"hello\"",
    ]


def test_csv_without_a_header():
    data = b"1,2.5,3\n4,5,6\n"
    assert rows(extract_csv(data)) == ["Row 1: 1 | 2.5 | 3", "Row 2: 4 | 5 | 6"]
    assert rows(extract_csv(b"just,one,row\n")) == ["Row 1: just | one | row"]


def test_tsv_and_semicolons():
    tsv = b"word\tmeaning\nsaudade\ta longing, a yearning\n"
    assert rows(extract_csv(tsv, delimiter="\t")) == [
        "Columns: word | meaning",
        "Row 2: word: saudade; meaning: a longing, a yearning",
    ]
    semicolons = "Produkt;Preis\nKäse;3,50\nBrot;2,10\n".encode("cp1252")
    document = extract_csv(semicolons)
    assert document.encoding == "cp1252"
    assert rows(document)[1] == "Row 2: Produkt: Käse; Preis: 3,50"


def test_csv_huge_field_and_empty_file():
    big = "x" * (csv.field_size_limit() + 10)
    document = extract_csv(f"id,blob\n1,{big}\n".encode())
    assert rows(document)[1] == f"Row 2: id: 1; blob: {big}"
    with pytest.raises(Skipped):
        extract_csv(b"")
    with pytest.raises(Skipped):
        extract_csv(b",,\n,,\n")


def test_csv_row_cap(monkeypatch):
    monkeypatch.setattr("desktop.extract.table.MAX_ROWS", 3)
    data = b"".join(b"%d,%d\n" % (i, i * i) for i in range(10))
    lines = rows(extract_csv(data))
    assert lines[:3] == ["Row 1: 0 | 0", "Row 2: 1 | 1", "Row 3: 2 | 4"]
    assert lines[3:] == ["(table cut at 3 rows: the rest was not indexed)"]
