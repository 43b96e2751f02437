"""Extraction is fed real files built by tests.fixtures.documents, never mocks."""

from __future__ import annotations

import codecs
import dataclasses
import io
import logging
import random
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from desktop.extract import (
    SUPPORTED_SUFFIXES,
    Document,
    ExtractionError,
    Section,
    Skipped,
    decode_text,
    extract,
    kind_for,
)
from tests.fixtures.documents import (
    docx_bytes,
    make_corrupt_pdf,
    make_docx,
    make_docx_without_body,
    make_encrypted_pdf,
    make_owner_only_pdf,
    make_pdf,
    pdf_bytes,
)

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def only_text(document: Document) -> str:
    assert len(document.sections) == 1
    return document.sections[0].text


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("notes.txt", "text"),
        ("NOTES.TXT", "text"),
        ("server.log", "text"),
        ("data.csv", "csv"),
        ("data.tsv", "tsv"),
        ("a.text", "text"),
        ("README.md", "markdown"),
        ("post.markdown", "markdown"),
        ("index.rst", "rst"),
        ("main.py", "code"),
        ("app.tsx", "code"),
        ("lib.rs", "code"),
        ("query.SQL", "code"),
        ("config.yaml", "code"),
        ("settings.json", "code"),
        ("paper.tex", "code"),
        ("page.html", "html"),
        ("page.HTM", "html"),
        ("page.xhtml", "html"),
        ("report.pdf", "pdf"),
        ("letter.docx", "docx"),
        ("deck.PPTX", "pptx"),
        ("budget.xlsx", "xlsx"),
        ("notes.odt", "odt"),
        ("book.epub", "epub"),
        ("old.rtf", "rtf"),
        ("saved.eml", "email"),
        ("inbox.mbox", "mbox"),
        ("analysis.ipynb", "notebook"),
        ("scan.TIFF", "image"),
        ("sheet.xls", "legacy"),
        ("movie.mp4", None),
        ("README", "text"),
        ("LICENSE", "text"),
        ("CHANGELOG", "text"),
        ("Makefile", "code"),
        ("Dockerfile", "code"),
        ("Dockerfile.dev", "code"),
        (".bashrc", "code"),
        ("dir.d/README", "text"),
        (Path("/home/me/docs/Report.PDF"), "pdf"),
        ("photo.jpg", "image"),
        ("archive.tar.gz", None),
        ("program", None),
        ("legacy.doc", "legacy"),
        (".pdf", None),
        ("", None),
    ],
)
def test_kind_for(name: str | Path, kind: str | None) -> None:
    assert kind_for(name) == kind


def test_supported_suffixes_are_lowercase_with_dot_and_cover_the_formats() -> None:
    assert all(s.startswith(".") and s == s.lower() for s in SUPPORTED_SUFFIXES)
    required = ".txt .md .rst .py .js .go .yaml .json .html .htm .pdf .docx .csv .log .tex"
    assert set(required.split()) <= SUPPORTED_SUFFIXES
    assert all(kind_for("x" + suffix) is not None for suffix in SUPPORTED_SUFFIXES)


def test_unsupported_name_is_skipped() -> None:
    with pytest.raises(Skipped) as info:
        extract("clip.mp4", b"\x00\x00\x00\x18ftypmp42")
    assert info.value.reason == "unsupported file type"


def test_results_are_immutable() -> None:
    document = extract("a.txt", b"hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        document.kind = "pdf"  # type: ignore[misc]
    assert document == Document("text", [Section("hello", None)], "utf-8")


# --- decoding --------------------------------------------------------------------------------

SAMPLE = "Grüße, café – naïve ☺\nsecond line\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (SAMPLE.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + SAMPLE.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + SAMPLE.encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + SAMPLE.encode("utf-16-be"), "utf-16-be"),
        (codecs.BOM_UTF32_LE + SAMPLE.encode("utf-32-le"), "utf-32-le"),
        (codecs.BOM_UTF32_BE + SAMPLE.encode("utf-32-be"), "utf-32-be"),
    ],
)
def test_decode_unicode_with_and_without_bom(data: bytes, encoding: str) -> None:
    assert decode_text(data) == (SAMPLE, encoding)


def test_decode_cp1252() -> None:
    data = "Smart “quotes” – and € and café\n".encode("cp1252")
    assert decode_text(data) == ("Smart “quotes” – and € and café\n", "cp1252")


def test_decode_invalid_bytes_falls_back_to_latin1_and_never_fails() -> None:
    data = b"abc \x81\x8d\x8f\x90\x9d \xff end"  # undefined in cp1252, invalid in UTF-8
    text, encoding = decode_text(data)
    assert encoding == "latin-1"
    assert text == data.decode("latin-1")
    assert all(decode_text(bytes([b]) * 3)[0] for b in range(256))


def test_decode_utf8_cut_off_mid_character_stays_utf8() -> None:
    data = "naïve log line €".encode()[:-1]
    text, encoding = decode_text(data)
    assert encoding == "utf-8"
    assert text.startswith("naïve log line")


def test_decode_bomless_utf16() -> None:
    assert decode_text("plain words\n".encode("utf-16-le")) == ("plain words\n", "utf-16-le")


def test_newlines_normalised_and_offsets_map_to_lines() -> None:
    data = "first\r\nsecond\rthird\nfourth ☺\r\n".encode()
    document = extract("notes.txt", data)
    text = only_text(document)
    assert text == "first\nsecond\nthird\nfourth ☺\n"
    offset = text.index("third")
    assert text.count("\n", 0, offset) == 2  # "third" is on line 3 of the file


def test_text_is_exactly_the_file_text() -> None:
    source = "  leading spaces kept\n\n\n\ttabs kept   \ntrailing\n\n"
    document = extract("a.py", source.encode())
    assert document.kind == "code"
    assert document.encoding == "utf-8"
    assert only_text(document) == source


@pytest.mark.parametrize(
    ("name", "kind"), [("a.md", "markdown"), ("a.rst", "rst"), ("a.log", "text")]
)
def test_text_kinds(name: str, kind: str) -> None:
    document = extract(name, b"# Title\n\nBody text.\n")
    assert document.kind == kind
    assert document.sections == [Section("# Title\n\nBody text.\n", None)]


def test_utf16_file_with_bom_is_not_binary() -> None:
    data = codecs.BOM_UTF16_LE + "PowerShell output\r\n".encode("utf-16-le")
    document = extract("out.txt", data)
    assert only_text(document) == "PowerShell output\n"
    assert document.encoding == "utf-16-le"


def test_ansi_coloured_log_is_not_binary() -> None:
    line = "\x1b[32mINFO\x1b[0m 2024-01-01 service started on port 8080\n"
    assert extract("app.log", (line * 50).encode()).kind == "text"


@pytest.mark.parametrize(
    "data",
    [
        b"PK\x03\x04" + b"\x00" * 20 + b"looks like text afterwards",
        b"text" * 100 + b"\x00" + b"text" * 100,
        bytes(range(1, 32)) * 20,  # control characters, no NUL
    ],
)
def test_binary_text_file_is_skipped(data: bytes) -> None:
    with pytest.raises(Skipped) as info:
        extract("renamed.txt", data)
    assert info.value.reason == "binary content"


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n", codecs.BOM_UTF8, codecs.BOM_UTF16_LE])
def test_empty_text_file_is_skipped(data: bytes) -> None:
    with pytest.raises(Skipped) as info:
        extract("empty.md", data)
    assert info.value.reason == "empty file"


# --- HTML ------------------------------------------------------------------------------------

PAGE = b"""<!DOCTYPE html>
<html><head><title>Trip &amp; Notes</title>
<style>p { color: red }</style>
<script>var s = "<p>not text</p>"; if (a < b) {}</script></head>
<body>
  <h1>Caf&eacute; guide</h1>
  <p>First   paragraph
     wraps &lt;here&gt; &#x263A;</p>
  <p>Second<br>line two</p>
  <div>block</div><span>inline</span> <b>bold</b>
  <table><tr><th>City</th><th>Price</th></tr><tr><td>Oslo</td><td>&euro;5</td></tr></table>
  <pre>  indented
    code</pre>
  <ul><li>one</li><li>two</li></ul>
  <noscript>enable JS</noscript>
</body></html>"""


def test_html_text_entities_blocks_and_paragraphs() -> None:
    document = extract("page.html", PAGE)
    assert document.kind == "html"
    assert document.encoding == "utf-8"
    assert only_text(document) == (
        "Trip & Notes\n\n"
        "Café guide\n\n"
        "First paragraph wraps <here> ☺\n\n"
        "Second\nline two\n\n"
        "block\ninline bold\n\n"
        "City\tPrice\nOslo\t€5\n\n"
        "  indented\n    code\n\n"
        "one\ntwo"
    )


def test_html_drops_script_and_style() -> None:
    text = only_text(extract("page.htm", PAGE))
    assert "not text" not in text
    assert "color" not in text
    assert "enable JS" not in text


def test_html_honours_meta_charset_for_legacy_pages() -> None:
    page = '<meta charset="koi8-r"><p>Привет</p>'.encode("koi8-r")
    document = extract("old.html", page)
    assert only_text(document) == "Привет"
    assert document.encoding == "koi8-r"


def test_html_without_visible_text_is_skipped() -> None:
    with pytest.raises(Skipped):
        extract("app.html", b"<html><head><script>boot()</script></head><body></body></html>")


def test_broken_html_still_extracts() -> None:
    assert only_text(extract("x.html", b"<p>unclosed <b>tags <div>and &bogus; stuff")) == (
        "unclosed tags\nand &bogus; stuff"
    )


# --- PDF -------------------------------------------------------------------------------------


def test_pdf_pages_keep_their_numbers(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "a.pdf", ["First page\nsecond line", "", "Third (page) \\ done"])
    document = extract(path, path.read_bytes())
    assert document.kind == "pdf"
    assert document.encoding is None
    assert document.sections == [
        Section("First page\nsecond line", 1),
        Section("Third (page) \\ done", 3),
    ]


def test_pdf_long_lines_are_wrapped_and_non_ascii_survives() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    document = extract("a.pdf", pdf_bytes([f"Café – “quoted” {words}"]))
    text = only_text(document)
    assert text.count("\n") >= 3
    assert text.split() == f"Café – “quoted” {words}".split()


def test_pdf_renders_with_poppler(tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed")
    path = make_pdf(tmp_path / "a.pdf", ["Hello (poppler)", "Page two"])
    out = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True, timeout=30
    )
    assert "Hello (poppler)" in out.stdout
    assert "Page two" in out.stdout


def test_a_pdf_of_blank_pages_is_skipped() -> None:
    with pytest.raises(Skipped) as info:  # OCR looked at both pages and found nothing
        extract("scan.pdf", pdf_bytes(["", " "]))
    assert info.value.reason == "no text (OCR found none on its pages)"


def test_corrupt_pdf(tmp_path: Path) -> None:
    path = make_corrupt_pdf(tmp_path / "bad.pdf")
    with pytest.raises(ExtractionError) as info:
        extract(path, path.read_bytes())
    assert info.value.reason.startswith("corrupt PDF: ")
    assert str(info.value) == info.value.reason


@pytest.mark.parametrize(
    "data",
    [
        pdf_bytes(["Some text on a page"])[:200],
        pdf_bytes(["Some text on a page"])[:-60],
        b"not a pdf at all",
        bytes(random.Random(1).randrange(256) for _ in range(4096)),
    ],
    ids=["truncated-early", "truncated-late", "plain-text", "random"],
)
def test_broken_pdf_is_an_extraction_error(data: bytes) -> None:
    with pytest.raises(ExtractionError) as info:
        extract("bad.pdf", data)
    assert info.value.reason.startswith("corrupt PDF: ")


def test_encrypted_pdf_needs_password(tmp_path: Path) -> None:
    path = make_encrypted_pdf(tmp_path / "locked.pdf", "top secret words")
    with pytest.raises(ExtractionError) as info:
        extract(path, path.read_bytes())
    assert info.value.reason == "encrypted PDF (needs a password)"


def test_owner_password_only_pdf_is_read(tmp_path: Path) -> None:
    path = make_owner_only_pdf(tmp_path / "restricted.pdf", "printing is not allowed")
    document = extract(path, path.read_bytes())
    assert document.sections == [Section("printing is not allowed", 1)]


def test_pdf_with_unsupported_encryption() -> None:
    certificate_security = b"/Encrypt << /Filter /Adobe.PubSec /SubFilter /adbe.pkcs7.s5 /V 4 >>"
    data = pdf_bytes(["x"]).replace(
        b"/Root 1 0 R >>", b"/Root 1 0 R " + certificate_security + b" >>"
    )
    with pytest.raises(ExtractionError) as info:
        extract("a.pdf", data)
    assert info.value.reason.startswith("encrypted PDF (unsupported encryption: ")


def test_unreadable_page_is_skipped_not_fatal() -> None:
    document = extract("a.pdf", pdf_bytes(["one", "two", "three"], unreadable_pages={2}))
    assert [s.page for s in document.sections] == [1, 3]


def test_all_pages_unreadable_is_an_error() -> None:
    with pytest.raises(ExtractionError) as info:
        extract("a.pdf", pdf_bytes(["one", "two"], unreadable_pages={1, 2}))
    assert info.value.reason.startswith("corrupt PDF: no page could be read")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_pypdf_warnings_go_to_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="desktop.extract.pdf")
    root_handler = _Collect()
    logging.getLogger().addHandler(root_handler)
    try:
        data = pdf_bytes(["Some text"])
        damaged = data.replace(b"startxref\n", b"startxref\n9")  # bad xref pointer
        assert only_text(extract("a.pdf", damaged)) == "Some text"
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert root_handler.records == []  # nothing reaches the app's own log handlers
    assert any(
        r.name == "desktop.extract.pdf" and r.levelno == logging.DEBUG for r in caplog.records
    )


# --- DOCX ------------------------------------------------------------------------------------


def test_docx_paragraphs_table_tabs_and_breaks(tmp_path: Path) -> None:
    path = make_docx(
        tmp_path / "letter.docx",
        ["Dear Ann & <Bob>,", "Name:\tValue", "line one\nline two", "", "Regards"],
        table=[["City", "Price"], ["Oslo", "€5"]],
    )
    document = extract(path, path.read_bytes())
    assert document.kind == "docx"
    assert only_text(document) == (
        "Dear Ann & <Bob>,\nName:\tValue\nline one\nline two\n\nRegards\nCity\tPrice\nOslo\t€5"
    )


def test_docx_is_a_valid_package() -> None:
    with zipfile.ZipFile(io.BytesIO(docx_bytes(["x"]))) as zf:
        assert {"[Content_Types].xml", "_rels/.rels", "word/document.xml"} <= set(zf.namelist())
        assert zf.testzip() is None


def test_docx_skips_tracked_deletions_and_field_codes() -> None:
    body = (
        "<w:p><w:r><w:t>kept </w:t></w:r><w:del><w:r><w:delText>gone</w:delText></w:r></w:del>"
        '<w:ins><w:r><w:t xml:space="preserve">inserted</w:t></w:r></w:ins></w:p>'
        "<w:p><w:r><w:instrText> PAGE </w:instrText></w:r><w:r><w:t>7</w:t></w:r></w:p>"
    )
    document = f'<w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
    assert only_text(extract("a.docx", docx_bytes([], document=document))) == "kept inserted\n7"


def test_docx_main_part_found_through_relationships() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx_bytes(["Moved body"]))) as src:
        with zipfile.ZipFile(buffer, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename == "_rels/.rels":
                    data = data.replace(b"word/document.xml", b"word/document2.xml")
                name = item.filename.replace("document.xml", "document2.xml")
                dst.writestr(name, data)
    assert only_text(extract("a.docx", buffer.getvalue())) == "Moved body"


def test_docx_that_is_not_a_zip() -> None:
    with pytest.raises(ExtractionError) as info:
        extract("a.docx", b"this is not a zip file")
    assert info.value.reason == "corrupt DOCX: not a zip archive"


def test_password_protected_docx() -> None:
    ole = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100 + "EncryptedPackage".encode("utf-16-le")
    )
    with pytest.raises(ExtractionError) as info:
        extract("a.docx", ole)
    assert info.value.reason == "encrypted DOCX (needs a password)"


def test_docx_without_document_xml(tmp_path: Path) -> None:
    path = make_docx_without_body(tmp_path / "a.docx")
    with pytest.raises(ExtractionError) as info:
        extract(path, path.read_bytes())
    assert info.value.reason == "corrupt DOCX: no word/document.xml"


def test_docx_with_damaged_member() -> None:
    data = bytearray(docx_bytes(["Some words that get compressed"] * 20))
    start = data.index(b"word/document.xml") + len("word/document.xml")
    data[start + 10 : start + 30] = b"\xff" * 20  # inside the deflated document part
    with pytest.raises(ExtractionError) as info:
        extract("a.docx", bytes(data))
    assert info.value.reason.startswith("corrupt DOCX: damaged archive")


def test_docx_with_malformed_xml() -> None:
    with pytest.raises(ExtractionError) as info:
        extract("a.docx", docx_bytes([], document="<w:document><unclosed>"))
    assert info.value.reason.startswith("corrupt DOCX: malformed XML")


def test_empty_docx_is_skipped() -> None:
    with pytest.raises(Skipped):
        extract("a.docx", docx_bytes(["", "  "]))


# --- robustness ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.pdf", "a.docx", "a.html", "a.txt"])
def test_mangled_inputs_never_raise_other_exceptions(name: str) -> None:
    rng = random.Random(name)
    seeds = {
        "a.pdf": pdf_bytes(["Some text", "More text"]),
        "a.docx": docx_bytes(["Some text"], table=[["a", "b"]]),
        "a.html": PAGE,
        "a.txt": SAMPLE.encode(),
    }
    seed = seeds[name]
    for _ in range(40):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randint(1, len(data))] if rng.random() < 0.3 else data
        try:
            extract(name, bytes(data))
        except (ExtractionError, Skipped) as exc:
            assert exc.reason
