"""OpenDocument text (.odt), spreadsheets (.ods) and presentations (.odp), from content.xml.

An OpenDocument file is a zip whose content.xml holds the whole body; it is read here with
ElementTree (no odfpy). Documents give one section; spreadsheets one per sheet, written as
office.py writes Excel sheets; presentations one per slide, with the speaker notes after the
slide's own text. A spreadsheet's content.xml is read as a stream, row by row, and rows or
cells that the file says repeat (a million empty rows is how an untouched sheet often ends)
are counted, not copied.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterator
from xml.etree import ElementTree

from desktop.extract.archive import open_zip, read_part
from desktop.extract.model import Document, ExtractionError, Section, Skipped, tidy
from desktop.extract.office import MAX_COLUMNS, MAX_ROW_NUMBER, SheetWriter, guarded

MAX_TABLE_REPEAT = 100  # copies of a repeated row or cell written in a document's table

_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
_PRESENTATION = "{urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"
_SVG = "{urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0}"
_MANIFEST = "{urn:oasis:names:tc:opendocument:xmlns:manifest:1.0}"

_P, _H = f"{_TEXT}p", f"{_TEXT}h"
_TABLE_TABLE = f"{_TABLE}table"
_ROW = f"{_TABLE}table-row"
_CELL, _COVERED = f"{_TABLE}table-cell", f"{_TABLE}covered-table-cell"
_ROW_GROUPS = frozenset({f"{_TABLE}{name}" for name in
                         ("table-header-rows", "table-rows", "table-row-group")})
_NOTES = f"{_PRESENTATION}notes"
# nothing a reader sees as the document's text: declarations, tracked deletions, comments,
# generated indexes (they repeat the headings), alt text, forms, thumbnails, animations
_SKIP = frozenset({
    f"{_TEXT}tracked-changes", f"{_TEXT}sequence-decls", f"{_TEXT}variable-decls",
    f"{_TEXT}user-field-decls", f"{_TEXT}dde-connection-decls", f"{_TEXT}note-citation",
    f"{_TEXT}table-of-content", f"{_TEXT}illustration-index", f"{_TEXT}table-index",
    f"{_TEXT}object-index", f"{_TEXT}user-index", f"{_TEXT}alphabetical-index",
    f"{_TEXT}bibliography", f"{_OFFICE}annotation", f"{_OFFICE}forms",
    f"{_OFFICE}event-listeners", f"{_SVG}title", f"{_SVG}desc", f"{_DRAW}page-thumbnail",
    f"{_TABLE}table-columns", f"{_TABLE}table-column", f"{_TABLE}table-column-group",
    f"{_TABLE}table-header-columns", f"{_TABLE}named-expressions", _NOTES,
})
_WHITESPACE = re.compile(r"[ \t\r\n]+")
_AUTO_NAME = re.compile(r"(?i)(page|slide)\s*\d+")  # a slide name the application made up
_DURATION = re.compile(r"-?P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?")


# --- the package -------------------------------------------------------------------------------


def _encrypted(archive: zipfile.ZipFile, label: str) -> bool:
    """Whether the manifest says a part is encrypted (password-protected documents)."""
    try:
        manifest = read_part(archive, "META-INF/manifest.xml", label)
    except KeyError:
        return "encrypted-package" in archive.NameToInfo
    try:
        root = ElementTree.fromstring(manifest)
    except ElementTree.ParseError:
        return False  # an unreadable manifest is a hint lost; content.xml still decides
    return any(True for _ in root.iter(f"{_MANIFEST}encryption-data"))


def _content(data: bytes, label: str) -> bytes:
    """content.xml's bytes, after the size check and the password check."""
    with open_zip(data, label) as archive:
        if _encrypted(archive, label):
            raise ExtractionError(f"encrypted {label} (needs a password)")
        try:
            return read_part(archive, "content.xml", label)
        except KeyError as exc:
            raise ExtractionError(f"corrupt {label}: no content.xml") from exc


def _body(data: bytes, label: str, kind: str) -> ElementTree.Element:
    """office:body's office:text / office:presentation element."""
    try:
        root = ElementTree.fromstring(_content(data, label))
    except ElementTree.ParseError as exc:
        raise ExtractionError(f"corrupt {label}: malformed XML ({str(exc)[:80]})") from exc
    body = root.find(f"{_OFFICE}body/{_OFFICE}{kind}")
    if body is None:
        raise ExtractionError(f"corrupt {label}: content.xml has no office:{kind} body")
    return body


def _count(element: ElementTree.Element, attribute: str) -> int:
    """A repeat count (number-rows-repeated, text:c), 1 when absent or nonsense."""
    try:
        return max(1, int(element.get(attribute) or 1))
    except ValueError:
        return 1


# --- text -------------------------------------------------------------------------------------


def _inline(element: ElementTree.Element, after: list[str]) -> str:
    """A paragraph's text; footnotes and text boxes anchored in it go to `after`."""
    parts = [_WHITESPACE.sub(" ", element.text or "")]
    for child in element:
        tag = child.tag
        if tag == f"{_TEXT}s":
            parts.append(" " * min(_count(child, f"{_TEXT}c"), 100))
        elif tag == f"{_TEXT}tab":
            parts.append("\t")
        elif tag == f"{_TEXT}line-break":
            parts.append("\n")
        elif tag in _SKIP or not isinstance(tag, str):
            pass
        elif tag == f"{_TEXT}note":
            body = child.find(f"{_TEXT}note-body")
            if body is not None:
                _blocks(body, after)
        elif tag.startswith(_DRAW):  # a frame or shape: block content of its own
            _blocks(child, after)
        else:
            parts.append(_inline(child, after))
        parts.append(_WHITESPACE.sub(" ", child.tail or ""))
    return "".join(parts)


def _blocks(element: ElementTree.Element, out: list[str]) -> None:
    """Block content as lines: a line per paragraph or heading, a line per table row (cells
    tab-separated), lists and sections and frames looked through."""
    for child in element:
        _block(child, out)


def _block(element: ElementTree.Element, out: list[str]) -> None:
    tag = element.tag
    if tag in (_P, _H):
        after: list[str] = []
        out.append(_inline(element, after).strip(" ") + "\n")
        out.extend(after)
    elif tag == _TABLE_TABLE:
        _table(element, out)
    elif isinstance(tag, str) and tag not in _SKIP:
        _blocks(element, out)


def _cell_lines(cell: ElementTree.Element) -> str:
    lines: list[str] = []
    _blocks(cell, lines)
    return " ".join("".join(lines).split())


def _rows(table: ElementTree.Element) -> Iterator[ElementTree.Element]:
    """A table's rows, through header-row and row-group wrappers."""
    for child in table:
        if child.tag == _ROW:
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _rows(child)


def _table(table: ElementTree.Element, out: list[str]) -> None:
    """A table in a document or on a slide: one line per row, cells tab-separated."""
    for row in _rows(table):
        cells: list[str] = []
        for cell in row:
            if cell.tag != _CELL:
                continue
            text = _cell_lines(cell)
            cells.extend([text] * min(_count(cell, f"{_TABLE}number-columns-repeated"),
                                      MAX_TABLE_REPEAT if text else 1))
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            line = "\t".join(cells) + "\n"
            out.extend([line] * min(_count(row, f"{_TABLE}number-rows-repeated"),
                                    MAX_TABLE_REPEAT))


def _odt(data: bytes) -> Document:
    lines: list[str] = []
    _blocks(_body(data, "ODT", "text"), lines)
    text = tidy("".join(lines))
    if not text.strip():
        raise Skipped("no text")
    return Document(kind="odt", sections=[Section(text=text, page=None)])


def extract_odt(data: bytes) -> Document:
    """An OpenDocument text: one section, a line per paragraph, heading and table row."""
    return guarded("ODT", _odt, data)


# --- presentations -----------------------------------------------------------------------------


def _frame_text(frame: ElementTree.Element) -> str:
    lines: list[str] = []
    _blocks(frame, lines)
    return " ".join("".join(lines).split())


def _slide(number: int, page: ElementTree.Element) -> Section | None:
    name = " ".join((page.get(f"{_DRAW}name") or "").split())
    title_frame = next((frame for frame in page
                        if frame.get(f"{_PRESENTATION}class") == "title"), None)
    title = _frame_text(title_frame) if title_frame is not None else ""
    if name and not _AUTO_NAME.fullmatch(name):
        header = f"Slide {number}: {name}"  # a name the person gave the slide
        title_frame = None  # so its title stays with the slide's text
    elif title:
        header = f"Slide {number}: {title}"
    else:
        header, title_frame = f"Slide {number}", None
    body: list[str] = []
    for child in page:
        if child is not title_frame:
            _block(child, body)
    notes: list[str] = []
    for notes_page in page.iter(_NOTES):
        _blocks(notes_page, notes)
    body_text, notes_text = tidy("".join(body)), tidy("".join(notes))
    if not (title or body_text or notes_text):
        return None
    text = header + ("\n" + body_text if body_text else "")
    if notes_text:
        text += "\n\nNotes:\n" + notes_text
    return Section(text=tidy(text), page=number)


def _odp(data: bytes) -> Document:
    pages = _body(data, "ODP", "presentation").findall(f"{_DRAW}page")
    sections = [s for s in (_slide(n, page) for n, page in enumerate(pages, 1)) if s]
    if not sections:
        raise Skipped("no text")
    return Document(kind="odp", sections=sections)


def extract_odp(data: bytes) -> Document:
    """An OpenDocument presentation: one section per slide with text, `page` its number, its
    text `Slide N: name` (the slide's own name, else its title), then `Notes:` and the notes."""
    return guarded("ODP", _odp, data)


# --- spreadsheets ------------------------------------------------------------------------------


def _number(text: str) -> int | float | str:
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _date(text: str) -> object:
    try:
        return dt.datetime.fromisoformat(text) if "T" in text else dt.date.fromisoformat(text)
    except ValueError:
        return text


def _duration(text: str) -> object:
    """An ODF time value (an ISO duration, PT10H30M00S) as a time of day, or a timedelta when
    it runs past a day."""
    match = _DURATION.fullmatch(text.strip())
    if not match or not any(match.groups()):
        return text
    days, hours, minutes, seconds = match.groups()
    span = dt.timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
                        seconds=float(seconds or 0))
    if text.strip().startswith("-") or span >= dt.timedelta(days=1):
        return -span if text.strip().startswith("-") else span
    return (dt.datetime.min + span).time()


def _cell_value(cell: ElementTree.Element) -> object:
    """A spreadsheet cell's value, typed as office.cell_text expects; None when empty."""
    kind = cell.get(f"{_OFFICE}value-type")
    if kind in ("float", "percentage", "currency"):
        value = cell.get(f"{_OFFICE}value")
        if value is not None:
            return _number(value)
    elif kind == "date":
        value = cell.get(f"{_OFFICE}date-value")
        if value:
            return _date(value)
    elif kind == "time":
        value = cell.get(f"{_OFFICE}time-value")
        if value:
            return _duration(value)
    elif kind == "boolean":
        value = cell.get(f"{_OFFICE}boolean-value")
        if value is not None:
            return value.strip().lower() in ("true", "1")
    elif kind == "string":
        value = cell.get(f"{_OFFICE}string-value")
        if value is not None:
            return value
    text = _cell_lines(cell)
    return text or None


def _sheet_row(row: ElementTree.Element) -> list[tuple[int, object]]:
    """A row's non-empty cells as (column, value), repeated cells counted, not copied, past
    the last column."""
    cells: list[tuple[int, object]] = []
    column = 1
    for cell in row:
        if column > MAX_COLUMNS:
            break
        if cell.tag not in (_CELL, _COVERED):
            continue
        repeat = _count(cell, f"{_TABLE}number-columns-repeated")
        value = _cell_value(cell) if cell.tag == _CELL else None
        if value is not None:
            cells.extend((column + k, value) for k in range(min(repeat, MAX_COLUMNS - column + 1)))
        column += repeat
    return cells


def _ods(data: bytes) -> Document:
    content = _content(data, "ODS")
    sections: list[Section] = []
    stack: list[ElementTree.Element] = []
    writer: SheetWriter | None = None
    sheets = depth = row_number = 0
    spreadsheet = full = False
    try:
        for event, element in ElementTree.iterparse(io.BytesIO(content), ("start", "end")):
            if event == "start":
                stack.append(element)
                if element.tag == f"{_OFFICE}spreadsheet":
                    spreadsheet = True
                elif element.tag == _TABLE_TABLE and spreadsheet:
                    depth += 1
                    if depth == 1:
                        sheets += 1
                        writer = SheetWriter(sheets, element.get(f"{_TABLE}name") or "")
                        row_number, full = 1, False
                continue
            stack.pop()
            if element.tag == _ROW and depth == 1 and writer is not None:
                repeat = _count(element, f"{_TABLE}number-rows-repeated")
                if not full and row_number <= MAX_ROW_NUMBER:
                    cells = _sheet_row(element)
                    if cells:
                        last = min(row_number + repeat - 1, MAX_ROW_NUMBER)
                        full = not writer.add(row_number, last, cells)
                row_number += repeat
                if stack:  # a row read is a row dropped: a big sheet never sits in memory
                    stack[-1].remove(element)
            elif element.tag == _TABLE_TABLE and spreadsheet:
                depth -= 1
                if depth == 0 and writer is not None:
                    section = writer.section()
                    if section is not None:
                        sections.append(section)
                    writer = None
                    if stack:
                        stack[-1].remove(element)
    except ElementTree.ParseError as exc:
        raise ExtractionError(f"corrupt ODS: malformed XML ({str(exc)[:80]})") from exc
    if not spreadsheet:
        raise ExtractionError("corrupt ODS: content.xml has no office:spreadsheet body")
    if not sections:
        raise Skipped("no text")
    return Document(kind="ods", sections=sections)


def extract_ods(data: bytes) -> Document:
    """An OpenDocument spreadsheet: one section per sheet with text, `page` its number, its
    text `Sheet N: name` and then `Row R: ...` lines, as office.extract_xlsx writes them."""
    return guarded("ODS", _ods, data)
