"""PowerPoint, Excel and OpenDocument extraction, fed real files built here: the OOXML and ODF
packages from minimal XML written with zipfile, the workbooks by openpyxl itself."""

from __future__ import annotations

import datetime
import io
import re
import time
import zipfile
from xml.sax.saxutils import escape

import openpyxl
import pytest

from desktop.extract import office
from desktop.extract.model import Document, ExtractionError, Skipped
from desktop.extract.odf import extract_odp, extract_ods, extract_odt
from desktop.extract.office import SheetWriter, extract_pptx, extract_xlsx

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
NS_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
NS_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
NS_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
XMLNS = f'xmlns:p="{NS_P}" xmlns:a="{NS_A}" xmlns:r="{REL}" xmlns:mc="{NS_MC}"'


def zip_bytes(parts: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content.encode() if isinstance(content, str) else content)
    return buffer.getvalue()


def ole_bytes(encrypted: bool) -> bytes:
    """An OLE compound file's look: the magic, a directory naming EncryptedPackage if asked."""
    body = bytearray(OLE_MAGIC + bytes(504))
    names = ["EncryptionInfo", "EncryptedPackage"] if encrypted else ["PowerPoint Document"]
    for name in names:
        body += name.encode("utf-16-le").ljust(128, b"\0")
    return bytes(body) + bytes(1024)


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """300 MB of zeros in one deflated part: about 300 KB on disk."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("content.xml", "w") as part:
            chunk = bytes(1 << 20)
            for _ in range(300):
                part.write(chunk)
    data = buffer.getvalue()
    assert len(data) < 2 * 1024 * 1024
    return data


# --- PowerPoint ----------------------------------------------------------------------------------


def paragraphs(*lines: str) -> str:
    """a:p elements; a "\\n" inside a line becomes an a:br between runs."""
    out = []
    for line in lines:
        runs = "<a:br/>".join(f"<a:r><a:t>{escape(run)}</a:t></a:r>"
                              for run in line.split("\n"))
        out.append(f"<a:p>{runs}</a:p>")
    return "".join(out)


def shape(body: str, placeholder: str | None = None) -> str:
    ph = "" if placeholder is None else (
        "<p:ph/>" if placeholder == "" else f'<p:ph type="{placeholder}"/>')
    return (f'<p:sp><p:nvSpPr><p:cNvPr id="2" name="s"/><p:cNvSpPr/><p:nvPr>{ph}</p:nvPr>'
            f"</p:nvSpPr><p:spPr/><p:txBody><a:bodyPr/>{body}</p:txBody></p:sp>")


def table(rows: list[list[str]]) -> str:
    trs = "".join("<a:tr>" + "".join(f"<a:tc><a:txBody><a:bodyPr/>{paragraphs(c)}</a:txBody>"
                                      "</a:tc>" for c in row) + "</a:tr>" for row in rows)
    return ('<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="9" name="t"/>'
            '<p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr><a:graphic>'
            '<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/table">'
            f"<a:tbl>{trs}</a:tbl></a:graphicData></a:graphic></p:graphicFrame>")


def slide_xml(shapes: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:sld {XMLNS}>'
            f"<p:cSld><p:spTree><p:nvGrpSpPr/><p:grpSpPr/>{shapes}</p:spTree></p:cSld>"
            "</p:sld>")


def notes_xml(text: str) -> str:
    return (f'<p:notes {XMLNS}><p:cSld><p:spTree>'
            f'{shape("", "sldImg")}{shape(paragraphs(text), "body")}'
            f'{shape(paragraphs("7"), "sldNum")}</p:spTree></p:cSld></p:notes>')


def rels_xml(rels: list[tuple[str, str, str]]) -> str:
    items = "".join(f'<Relationship Id="{rid}" Type="{REL}/{kind}" Target="{target}"/>'
                    for rid, kind, target in rels)
    return f'<Relationships xmlns="{PKG_REL}">{items}</Relationships>'


def pptx_bytes(slides: list[tuple[str, str | None]], order: list[int] | None = None,
               extra: dict[str, str] | None = None) -> bytes:
    """A deck: slides[i] = (the slide's shapes XML, its notes or None), stored as
    slide{i+1}.xml; `order` lists the file indexes in presentation order."""
    order = list(range(len(slides))) if order is None else order
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               'content-types"/>',
        "_rels/.rels": rels_xml([("rId1", "officeDocument", "ppt/presentation.xml")]),
    }
    ids = "".join(f'<p:sldId id="{256 + n}" r:id="rId{i + 10}"/>' for n, i in enumerate(order))
    parts["ppt/presentation.xml"] = (f"<p:presentation {XMLNS}><p:sldIdLst>{ids}</p:sldIdLst>"
                                     "</p:presentation>")
    parts["ppt/_rels/presentation.xml.rels"] = rels_xml(
        [(f"rId{i + 10}", "slide", f"slides/slide{i + 1}.xml") for i in range(len(slides))])
    for i, (shapes, notes) in enumerate(slides):
        parts[f"ppt/slides/slide{i + 1}.xml"] = slide_xml(shapes)
        if notes is not None:
            parts[f"ppt/slides/_rels/slide{i + 1}.xml.rels"] = rels_xml(
                [("rId2", "notesSlide", f"../notesSlides/notesSlide{i + 1}.xml")])
            parts[f"ppt/notesSlides/notesSlide{i + 1}.xml"] = notes_xml(notes)
    parts.update(extra or {})
    return zip_bytes(parts)


def test_pptx_slides_in_presentation_order_with_titles_text_tables_and_notes():
    slides = [
        (shape(paragraphs("Budget review"), "title")
         + shape(paragraphs("Costs fell\nby a third", "Revenue grew"), "")
         + table([["Region", "Sales"], ["North", "12"]])
         + shape(paragraphs("3"), "sldNum"),
         "Mention the auditors"),
        (shape(paragraphs("Opening"), "ctrTitle") + shape(paragraphs("Welcome all")), None),
        (shape(paragraphs("A slide without a title")), None),
    ]
    # file order slide1, slide2, slide3; the deck shows slide2, slide1, slide3
    document = extract_pptx(pptx_bytes(slides, order=[1, 0, 2]))
    assert document.kind == "pptx"
    assert [s.page for s in document.sections] == [1, 2, 3]
    first, second, third = (s.text for s in document.sections)
    assert first == "Slide 1: Opening\nWelcome all"
    assert second.splitlines() == [
        "Slide 2: Budget review", "Costs fell", "by a third", "Revenue grew",
        "Region\tSales", "North\t12", "", "Notes:", "Mention the auditors"]
    assert third == "Slide 3\nA slide without a title"


def test_pptx_takes_one_side_of_alternate_content_and_reads_groups():
    alternate = (f"<mc:AlternateContent><mc:Choice Requires=\"p14\">"
                 f"{shape(paragraphs('Chosen words'))}</mc:Choice>"
                 f"<mc:Fallback>{shape(paragraphs('Chosen words'))}</mc:Fallback>"
                 "</mc:AlternateContent>")
    group = f"<p:grpSp><p:nvGrpSpPr/><p:grpSpPr/>{shape(paragraphs('In a group'))}</p:grpSp>"
    text = extract_pptx(pptx_bytes([(alternate + group, None)])).text
    assert text == "Slide 1\nChosen words\nIn a group"


def test_pptx_skips_slides_without_text_but_keeps_numbering():
    deck = pptx_bytes([(shape(paragraphs("")), None), (shape(paragraphs("Second")), None)])
    document = extract_pptx(deck)
    assert [(s.page, s.text) for s in document.sections] == [(2, "Slide 2\nSecond")]


def test_pptx_notes_only_slide_is_kept():
    document = extract_pptx(pptx_bytes([("", "Only notes here")]))
    assert document.sections[0].text == "Slide 1\n\nNotes:\nOnly notes here"


@pytest.mark.parametrize("slides", [[], [(shape(paragraphs(" ")), None)]])
def test_empty_deck_is_skipped(slides):
    with pytest.raises(Skipped, match="no text"):
        extract_pptx(pptx_bytes(slides))


def test_pptx_failures_have_reasons():
    with pytest.raises(ExtractionError, match=r"^corrupt PPTX: not a zip archive$"):
        extract_pptx(b"this is not a presentation")
    with pytest.raises(ExtractionError, match=r"^encrypted PPTX \(needs a password\)$"):
        extract_pptx(ole_bytes(encrypted=True))
    with pytest.raises(ExtractionError, match="old-style PowerPoint file, not a zip"):
        extract_pptx(ole_bytes(encrypted=False))
    with pytest.raises(ExtractionError, match="corrupt PPTX: no ppt/presentation.xml"):
        extract_pptx(zip_bytes({"hello.txt": "hi"}))
    broken = pptx_bytes([(shape(paragraphs("x")), None)],
                        extra={"ppt/presentation.xml": "<p:presentation"})
    with pytest.raises(ExtractionError, match="corrupt PPTX: malformed XML"):
        extract_pptx(broken)
    broken_slide = pptx_bytes([(shape(paragraphs("x")), None)],
                              extra={"ppt/slides/slide1.xml": "<p:sld><p:cSld></p:sld>"})
    with pytest.raises(ExtractionError, match="corrupt PPTX: malformed XML in ppt/slides"):
        extract_pptx(broken_slide)


# --- Excel ---------------------------------------------------------------------------------------


def workbook_bytes(build, cached: dict[str, str] | None = None) -> bytes:
    """A workbook saved by openpyxl; `cached` puts Excel's cached results into formula cells
    (openpyxl writes formulas without them) as {"D2": "84"}."""
    workbook = openpyxl.Workbook()
    build(workbook)
    buffer = io.BytesIO()
    workbook.save(buffer)
    if not cached:
        return buffer.getvalue()
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    parts: dict[str, str | bytes] = {}
    for info in source.infolist():
        content = source.read(info)
        if info.filename.startswith("xl/worksheets/"):
            xml = content.decode()
            for ref, value in cached.items():
                pattern = rf'(<c r="{ref}"[^>]*>\s*<f>[^<]*</f>)\s*<v\s*/>'
                xml = re.sub(pattern, rf"\1<v>{value}</v>", xml)
            content = xml.encode()
        parts[info.filename] = content
    return zip_bytes(parts)


def budget(workbook: openpyxl.Workbook) -> None:
    sheet = workbook.active
    sheet.title = "Budget"
    sheet.append(["Name", "Amount", "Due", "Double", "Note"])
    sheet.append(["Alice", 42, datetime.date(2024, 3, 5), "=B2*2", None])
    sheet.append(["Bob", 2.5, datetime.datetime(2024, 3, 6, 14, 30), "=B3*2", "late\nagain"])
    sheet.append([])
    sheet.append([None, 7.0, None, None, None, "extra"])
    raw = workbook.create_sheet("Raw numbers")
    raw.append([1, 2, 3])
    raw["B3"] = datetime.time(9, 15)
    raw["A5"] = True
    workbook.create_sheet("Empty")
    hidden = workbook.create_sheet("Secret")
    hidden.sheet_state = "hidden"
    hidden["A1"] = "hidden words"


def test_xlsx_sheets_rows_headers_dates_and_cached_formulas():
    document = extract_xlsx(workbook_bytes(budget, cached={"D2": "84", "D3": "5"}))
    assert document.kind == "xlsx"
    assert [s.page for s in document.sections] == [1, 2, 4]  # sheet 3 is empty
    first, second, hidden = (s.text.splitlines() for s in document.sections)
    assert first == [
        "Sheet 1: Budget",
        "Row 1: Name | Amount | Due | Double | Note",
        "Row 2: Name: Alice; Amount: 42; Due: 2024-03-05; Double: 84",
        "Row 3: Name: Bob; Amount: 2.5; Due: 2024-03-06T14:30:00; Double: 5; Note: late again",
        "Row 5: Amount: 7; F: extra",
    ]
    assert second == ["Sheet 2: Raw numbers", "Row 1: 1 | 2 | 3", "Row 3: 09:15:00",
                      "Row 5: TRUE"]
    assert hidden == ["Sheet 4: Secret", "Row 1: hidden words"]


def test_xlsx_formula_without_cached_value_is_empty():
    text = extract_xlsx(workbook_bytes(budget)).sections[0].text
    assert "Double" in text and "B2*2" not in text and "Double: 84" not in text


def test_xlsx_sheet_is_cut_at_the_row_cap(monkeypatch):
    monkeypatch.setattr(office, "MAX_SHEET_ROWS", 3)

    def rows(workbook: openpyxl.Workbook) -> None:
        for n in range(10):
            workbook.active.append([f"line {n}", n])

    lines = extract_xlsx(workbook_bytes(rows)).sections[0].text.splitlines()
    assert lines[1:4] == ["Row 1: line 0 | 0", "Row 2: line 1 | 1", "Row 3: line 2 | 2"]
    assert len(lines) == 5 and lines[-1].startswith("(cut: only the first 3 rows")
    assert "after row 3" in lines[-1]


def test_empty_workbook_is_skipped():
    with pytest.raises(Skipped, match="no text"):
        extract_xlsx(workbook_bytes(lambda workbook: None))


def test_xlsx_failures_have_reasons():
    with pytest.raises(ExtractionError, match=r"^corrupt XLSX: not a zip archive$"):
        extract_xlsx(b"PK but not really")
    with pytest.raises(ExtractionError, match=r"^encrypted XLSX \(needs a password\)$"):
        extract_xlsx(ole_bytes(encrypted=True))
    with pytest.raises(ExtractionError, match="old-style Excel file, not a zip"):
        extract_xlsx(ole_bytes(encrypted=False))
    with pytest.raises(ExtractionError, match="corrupt XLSX: no xl/workbook.xml"):
        extract_xlsx(zip_bytes({"word/document.xml": "<w/>"}))
    good = zipfile.ZipFile(io.BytesIO(workbook_bytes(budget)))
    parts: dict[str, str | bytes] = {i.filename: good.read(i) for i in good.infolist()}
    parts["xl/worksheets/sheet1.xml"] = b"<worksheet><sheetData><row r='1'>"
    with pytest.raises(ExtractionError, match="corrupt XLSX: malformed XML"):
        extract_xlsx(zip_bytes(parts))
    parts = {i.filename: good.read(i) for i in good.infolist()}
    parts["xl/workbook.xml"] = b"<workbook"
    with pytest.raises(ExtractionError, match="corrupt XLSX: malformed XML"):
        extract_xlsx(zip_bytes(parts))


def test_sheet_writer_headers_and_repeated_rows():
    writer = SheetWriter(2, "Plan", limit=2)
    assert writer.add(3, 3, [(1, "When"), (3, "What")])
    assert writer.add(4, 9, [(1, datetime.date(2024, 1, 2)), (2, 1e20), (3, "x")])
    assert not writer.add(10, 10, [(1, "one too many")])
    section = writer.section()
    assert section is not None and section.page == 2
    assert section.text.splitlines() == [
        "Sheet 2: Plan", "Row 3: When | What", "Rows 4-9: When: 2024-01-02; B: 1e+20; What: x",
        "(cut: only the first 2 rows with text are indexed; the sheet goes on after row 9)"]


# --- OpenDocument --------------------------------------------------------------------------------

ODF_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
}
ODF_XMLNS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in ODF_NS.items())
MANIFEST = ('<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:'
            'manifest:1.0" manifest:version="1.2">'
            '<manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"'
            ">{encryption}</manifest:file-entry></manifest:manifest>")
ENCRYPTION = ('<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x">'
              '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" '
              'manifest:initialisation-vector="x"/></manifest:encryption-data>')


def odf_bytes(kind: str, body: str, encrypted: bool = False, content: bytes | None = None
              ) -> bytes:
    mime = f"application/vnd.oasis.opendocument.{kind}"
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_XMLNS} '
           f'office:version="1.2"><office:body><office:{kind}>{body}</office:{kind}>'
           "</office:body></office:document-content>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", mime, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content if content is not None else xml,
                         compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", MANIFEST.format(
            mime=mime, encryption=ENCRYPTION if encrypted else ""))
    return buffer.getvalue()


ODT_BODY = (
    "<text:sequence-decls><text:sequence-decl text:name=\"Figure\"/></text:sequence-decls>"
    '<text:h text:outline-level="1">Trip   report</text:h>'
    "<text:p>We went<text:s text:c=\"3\"/>north.<text:tab/>Then<text:line-break/>south"
    '<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation>'
    "<text:note-body><text:p>A footnote.</text:p></text:note-body></text:note>.</text:p>"
    "<text:list><text:list-item><text:p>first item</text:p></text:list-item>"
    "<text:list-item><text:p><text:span>second</text:span> item</text:p></text:list-item>"
    "</text:list>"
    "<table:table table:name=\"T\"><table:table-column table:number-columns-repeated=\"3\"/>"
    "<table:table-header-rows><table:table-row><table:table-cell><text:p>City</text:p>"
    "</table:table-cell><table:table-cell><text:p>Days</text:p></table:table-cell>"
    "<table:table-cell table:number-columns-repeated=\"5\"/></table:table-row>"
    "</table:table-header-rows><table:table-row><table:table-cell><text:p>Oslo</text:p>"
    "</table:table-cell><table:table-cell><text:p>3</text:p></table:table-cell></table:table-row>"
    "</table:table>"
    "<text:p><office:annotation><text:p>a comment</text:p></office:annotation>The end</text:p>"
)


def test_odt_paragraphs_lists_tables_and_spacing():
    document = extract_odt(odf_bytes("text", ODT_BODY))
    assert document.kind == "odt"
    assert [s.page for s in document.sections] == [None]
    assert document.text.splitlines() == [
        "Trip report", "We went   north.\tThen", "south.", "A footnote.", "first item",
        "second item", "City\tDays", "Oslo\t3", "The end"]


def test_odt_failures_have_reasons():
    with pytest.raises(Skipped, match="no text"):
        extract_odt(odf_bytes("text", "<text:p>  </text:p>"))
    with pytest.raises(ExtractionError, match=r"^encrypted ODT \(needs a password\)$"):
        extract_odt(odf_bytes("text", "", encrypted=True, content=bytes(range(256))))
    with pytest.raises(ExtractionError, match=r"^corrupt ODT: not a zip archive$"):
        extract_odt(b"plain words")
    with pytest.raises(ExtractionError, match="corrupt ODT: malformed XML"):
        extract_odt(odf_bytes("text", "", content=b"<office:document-content><office:body>"))
    with pytest.raises(ExtractionError, match="corrupt ODT: no content.xml"):
        extract_odt(zip_bytes({"mimetype": "application/vnd.oasis.opendocument.text"}))
    with pytest.raises(ExtractionError, match="no office:text body"):
        extract_odt(odf_bytes("spreadsheet", ""))


def cell(value: str, attrs: str = "", text: str | None = None) -> str:
    shown = value if text is None else text
    return f"<table:table-cell {attrs}><text:p>{escape(shown)}</text:p></table:table-cell>"


def number(value: str) -> str:
    return cell(value, f'office:value-type="float" office:value="{value}"', text=f"{value} !")


STRING = 'office:value-type="string"'
EMPTY_TAIL = '<table:table-cell table:number-columns-repeated="16380"/>'
ODS_BODY = (
    '<table:table table:name="Costs">'
    '<table:table-column table:number-columns-repeated="16384"/>'
    f"<table:table-row>{cell('Item', STRING)}{cell('Price')}"
    f"{cell('Bought')}{cell('At')}{EMPTY_TAIL}</table:table-row>"
    f"<table:table-row>{cell('Tea')}{number('3.5')}"
    + cell("05/03/24", 'office:value-type="date" office:date-value="2024-03-05"')
    + cell("10:30", 'office:value-type="time" office:time-value="PT10H30M00S"')
    + f"{EMPTY_TAIL}</table:table-row>"
    '<table:table-row table:number-rows-repeated="1048000">'
    '<table:table-cell table:number-columns-repeated="16384"/></table:table-row>'
    f"<table:table-row>{cell('Cake')}{number('12')}{EMPTY_TAIL}</table:table-row>"
    "</table:table>"
    '<table:table table:name="Blank"><table:table-row table:number-rows-repeated="1048576">'
    '<table:table-cell table:number-columns-repeated="1024"/></table:table-row></table:table>'
    '<table:table table:name="Raw">'
    f'<table:table-row table:number-rows-repeated="4">{number("1")}'
    + cell("yes", 'office:value-type="boolean" office:boolean-value="true"')
    + '<table:covered-table-cell table:number-columns-repeated="2"/>'
    + '<table:table-cell table:number-columns-repeated="2"><text:p>x</text:p>'
    + "</table:table-cell></table:table-row></table:table>"
    "<table:named-expressions/>"
)


def test_ods_sheets_rows_headers_and_repeats():
    started = time.monotonic()
    document = extract_ods(odf_bytes("spreadsheet", ODS_BODY))
    assert time.monotonic() - started < 2.0  # a million repeated rows are counted, not copied
    assert document.kind == "ods"
    assert [s.page for s in document.sections] == [1, 3]
    costs, raw = (s.text.splitlines() for s in document.sections)
    assert costs == [
        "Sheet 1: Costs",
        "Row 1: Item | Price | Bought | At",
        "Row 2: Item: Tea; Price: 3.5; Bought: 2024-03-05; At: 10:30:00",
        "Row 1048003: Item: Cake; Price: 12",
    ]
    assert raw == ["Sheet 3: Raw", "Rows 1-4: 1 | TRUE | x | x"]


def test_ods_million_repeated_rows_finish_fast():
    rows = ('<table:table-row table:number-rows-repeated="1048000"><table:table-cell '
            'table:number-columns-repeated="1024"/></table:table-row>')
    body = (f'<table:table table:name="S">{rows}<table:table-row>{cell("last")}'
            f"</table:table-row>{rows}</table:table>")
    started = time.monotonic()
    document = extract_ods(odf_bytes("spreadsheet", body))
    assert time.monotonic() - started < 1.0
    assert document.text == "Sheet 1: S\nRow 1048001: last"


def test_ods_empty_and_broken():
    with pytest.raises(Skipped, match="no text"):
        extract_ods(odf_bytes("spreadsheet", '<table:table table:name="A"/>'))
    with pytest.raises(ExtractionError, match=r"^encrypted ODS \(needs a password\)$"):
        extract_ods(odf_bytes("spreadsheet", "", encrypted=True, content=b"\x00\x01garbage"))
    with pytest.raises(ExtractionError, match="corrupt ODS: malformed XML"):
        extract_ods(odf_bytes("spreadsheet", "", content=b"<a><b></a>"))
    with pytest.raises(ExtractionError, match="no office:spreadsheet body"):
        extract_ods(odf_bytes("text", "<text:p>words</text:p>"))


def frame(text: str, cls: str | None = None) -> str:
    attrs = f' presentation:class="{cls}"' if cls else ""
    return (f"<draw:frame{attrs}><draw:text-box><text:p>{escape(text)}</text:p>"
            "</draw:text-box></draw:frame>")


ODP_BODY = (
    f'<draw:page draw:name="page1">{frame("Welcome", "title")}{frame("Agenda today")}'
    f'<presentation:notes><draw:page-thumbnail draw:page-number="1"/>'
    f'{frame("Smile first", "notes")}</presentation:notes></draw:page>'
    f'<draw:page draw:name="page2"><presentation:notes>{frame("", "notes")}'
    "</presentation:notes></draw:page>"
    f'<draw:page draw:name="Numbers">{frame("Q3", "title")}'
    "<draw:frame><table:table><table:table-row>"
    f"{cell('Sales')}{cell('9')}</table:table-row></table:table></draw:frame>"
    "<draw:custom-shape><svg:title>alt text</svg:title><text:p>Up 4%</text:p>"
    "</draw:custom-shape></draw:page>"
    f'<draw:page draw:name="page4">{frame("Thanks")}</draw:page>'
)


def test_odp_slides_titles_names_and_notes():
    document = extract_odp(odf_bytes("presentation", ODP_BODY))
    assert document.kind == "odp"
    assert [s.page for s in document.sections] == [1, 3, 4]
    assert [s.text for s in document.sections] == [
        "Slide 1: Welcome\nAgenda today\n\nNotes:\nSmile first",
        "Slide 3: Numbers\nQ3\nSales\t9\nUp 4%",
        "Slide 4\nThanks",
    ]


def test_odp_empty_and_encrypted():
    with pytest.raises(Skipped, match="no text"):
        extract_odp(odf_bytes("presentation", '<draw:page draw:name="page1"/>'))
    with pytest.raises(ExtractionError, match=r"^encrypted ODP \(needs a password\)$"):
        extract_odp(odf_bytes("presentation", "", encrypted=True, content=b"\x80garbage"))


# --- every format: zip bombs -----------------------------------------------------------------


@pytest.mark.parametrize("extractor", [extract_pptx, extract_xlsx, extract_odt, extract_ods,
                                       extract_odp])
def test_zip_bomb_is_refused_before_reading(zip_bomb, extractor):
    started = time.monotonic()
    with pytest.raises(ExtractionError, match="^too large: inflates to 300 MB"):
        extractor(zip_bomb)
    assert time.monotonic() - started < 0.5


def test_results_are_documents():
    for document in (extract_pptx(pptx_bytes([(shape(paragraphs("a")), None)])),
                     extract_odt(odf_bytes("text", "<text:p>a</text:p>"))):
        assert isinstance(document, Document)
