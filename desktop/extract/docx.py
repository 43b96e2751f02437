"""Word (.docx) text straight from the OOXML package, without a heavy document library.

A .docx is a zip of XML parts; the words live in the main document part. Walking it in order
keeps paragraphs, table rows and tabs where a reader expects them, while tracked deletions and
field codes, which a reader never sees, are left out.
"""

from __future__ import annotations

import posixpath
import zipfile
from xml.etree import ElementTree

from desktop.extract.archive import open_zip, read_part
from desktop.extract.model import Document, ExtractionError, Section, Skipped, tidy

MAX_PART_BYTES = 256 * 1024 * 1024  # guards against zip bombs posing as documents
_DEFAULT_MAIN_PART = "word/document.xml"
_OFFICE_DOCUMENT_REL = "/officeDocument"
_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_W_NAMESPACES = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",  # "Strict" OOXML
)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_INVISIBLE = frozenset({"delText", "instrText", "delInstrText", "rPr", "pPr", "tblPr", "sectPr"})


def _local(tag: object) -> str | None:
    """The w: local name of an element, or None for other namespaces and comments."""
    if not isinstance(tag, str) or not tag.startswith("{"):
        return None
    namespace, _, name = tag[1:].partition("}")
    return name if namespace in _W_NAMESPACES else None


def _read_part(archive: zipfile.ZipFile, name: str) -> bytes:
    return read_part(archive, name, "DOCX")


def _main_part_name(archive: zipfile.ZipFile) -> str:
    """The main part named by the package relationships (Word sometimes uses document2.xml)."""
    try:
        root = ElementTree.fromstring(_read_part(archive, "_rels/.rels"))
    except Exception:  # the relationships are only a hint; the default part may still be fine
        return _DEFAULT_MAIN_PART
    for rel in root.iter(f"{_REL_NS}Relationship"):
        target = rel.get("Target") or ""
        if (rel.get("Type") or "").endswith(_OFFICE_DOCUMENT_REL) and target:
            name = posixpath.normpath(target.lstrip("/"))
            if name in archive.NameToInfo:
                return name
    return _DEFAULT_MAIN_PART


def _children_named(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    """Nearest descendants called ``name``, looking through wrappers such as content controls
    but not into the matches themselves (so a nested table's cells stay inside their cell)."""
    found: list[ElementTree.Element] = []
    for child in element:
        if _local(child.tag) == name:
            found.append(child)
        elif _local(child.tag) not in ("tbl", "p"):
            found.extend(_children_named(child, name))
    return found


def _cell_text(cell: ElementTree.Element) -> str:
    parts: list[str] = []
    _collect(cell, parts)
    return " ".join("".join(parts).split("\n")).strip()


def _collect(element: ElementTree.Element, out: list[str]) -> None:
    for child in element:
        name = _local(child.tag)
        if name == "t":
            out.append(child.text or "")
        elif name in ("tab", "ptab"):
            out.append("\t")
        elif name in ("br", "cr"):
            out.append("\n")
        elif name == "noBreakHyphen":
            out.append("-")
        elif name in _INVISIBLE:
            continue
        elif name == "p":
            _collect(child, out)
            out.append("\n")
        elif name == "tbl":
            for row in _children_named(child, "tr"):
                cells = [_cell_text(cell) for cell in _children_named(row, "tc")]
                out.append("\t".join(cells) + "\n")
        else:
            _collect(child, out)


def _not_a_zip_reason(data: bytes) -> str:
    if data.startswith(_OLE_MAGIC):
        # Word saves password-protected documents as an OLE container around the real zip.
        if _ENCRYPTED_PACKAGE in data:
            return "encrypted DOCX (needs a password)"
        return "corrupt DOCX: an old-style Word file, not a zip archive"
    return "corrupt DOCX: not a zip archive"


def _main_part(data: bytes) -> bytes:
    if data.startswith(_OLE_MAGIC):
        raise ExtractionError(_not_a_zip_reason(data))
    archive = open_zip(data, "DOCX")  # (refuses an archive that would inflate beyond reason)
    with archive:
        try:
            part = _main_part_name(archive)
            try:
                return read_part(archive, part, "DOCX")
            except KeyError as exc:
                raise ExtractionError(f"corrupt DOCX: no {part}") from exc
        except zipfile.BadZipFile as exc:  # bad CRC or local header, in the relationships
            raise ExtractionError(f"corrupt DOCX: damaged archive ({str(exc)[:80]})") from exc


def docx_text(data: bytes) -> str:
    """The document's text: one line per paragraph and per table row (cells tab-separated)."""
    xml = _main_part(data)
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ExtractionError(f"corrupt DOCX: malformed XML ({str(exc)[:80]})") from exc
    parts: list[str] = []
    # Only the body: headers, footers and the document's settings live elsewhere.
    for body in (el for el in root if _local(el.tag) == "body"):
        _collect(body, parts)
    return tidy("".join(parts))


def extract_docx(data: bytes) -> Document:
    text = docx_text(data)
    if not text.strip():
        raise Skipped("no text")
    return Document(kind="docx", sections=[Section(text=text, page=None)])
