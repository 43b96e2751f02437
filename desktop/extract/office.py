"""PowerPoint (.pptx) and Excel (.xlsx) text: one section per slide, one per sheet.

A .pptx is read straight from its XML parts, as docx.py reads Word: the deck's own order
(presentation.xml's slide list, not the part names, which drift as slides are moved), each
slide's text frames and tables, then its speaker notes. A .xlsx is read by openpyxl in its
streaming mode, with the values Excel cached for formulas, one line per row, each line saying
which row it is so that a passage found by search says where it came from.

Every archive is opened through archive.open_zip first, so a zip bomb is refused before any
parser sees it; every failure leaves as ExtractionError or Skipped.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree

import openpyxl
from openpyxl.utils import get_column_letter

from desktop.extract.archive import open_zip, read_part
from desktop.extract.model import Document, ExtractionError, Section, Skipped, tidy

MAX_SHEET_ROWS = 200_000  # lines written for one sheet; past it the sheet is cut
MAX_ROW_NUMBER = 1_048_576  # Excel's last row: nothing past it is read
MAX_COLUMNS = 16_384  # Excel's last column (XFD)

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_R_NAMESPACES = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",  # "Strict" OOXML
)
_DRAWING_NAMESPACES = frozenset({
    "http://schemas.openxmlformats.org/drawingml/2006/main",
    "http://purl.oclc.org/ooxml/drawingml/main",
    "http://schemas.openxmlformats.org/presentationml/2006/main",
    "http://purl.oclc.org/ooxml/presentationml/main",
})
_DIAGRAM_NAMESPACES = frozenset({
    "http://schemas.openxmlformats.org/drawingml/2006/diagram",
    "http://purl.oclc.org/ooxml/drawingml/diagram",
})
_MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_TITLE_PLACEHOLDERS = frozenset({"title", "ctrTitle"})
# placeholders whose text the application makes up (numbers, dates) or that hold none
_SLIDE_NOISE = frozenset({"sldNum", "dt"})
_NOTES_NOISE = frozenset({"sldNum", "dt", "hdr", "ftr", "sldImg"})
_NO_TEXT = frozenset({"extLst", "pPr", "rPr", "endParaRPr", "nvSpPr", "nvGrpSpPr",
                      "nvGraphicFramePr", "nvPicPr", "nvCxnSpPr", "spPr", "grpSpPr", "style"})


# --- shared by both formats (and by odf.py's spreadsheets) -------------------------------------


def guarded(label: str, extractor: Callable[[bytes], Document], data: bytes) -> Document:
    """Run an extractor so that nothing but ExtractionError or Skipped leaves it."""
    try:
        return extractor(data)
    except (ExtractionError, Skipped):
        raise
    except RecursionError as exc:
        raise ExtractionError(f"corrupt {label}: nested too deeply to read") from exc
    except MemoryError as exc:
        raise ExtractionError(f"too large: {label} needs more memory than there is") from exc
    except Exception as exc:
        raise ExtractionError(f"corrupt {label}: {_cause(exc)}") from exc


def _cause(exc: BaseException) -> str:
    if isinstance(exc, ElementTree.ParseError):
        return f"malformed XML ({str(exc)[:80]})"
    message = " ".join(str(exc.args[0] if exc.args else exc).split())[:80]
    if isinstance(exc, KeyError):  # zipfile's "There is no item named 'x' in the archive"
        named = re.search(r"named '(.+?)'", message)
        return f"no {named.group(1)}" if named else f"missing part ({message})"
    if isinstance(exc, zipfile.BadZipFile):  # bad CRC or local header
        return f"damaged archive ({message})"
    if isinstance(exc, LookupError) and "encoding" in message:  # <?xml encoding="nonsense"?>
        return f"malformed XML ({message})"
    if isinstance(exc, zlib.error):
        return "damaged archive (bad compressed data)"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _open_package(data: bytes, label: str, application: str) -> zipfile.ZipFile:
    """The checked archive; for an OLE container, why it is not one (a password-protected
    Office file, or a pre-2007 binary one)."""
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise ExtractionError(f"encrypted {label} (needs a password)")
        raise ExtractionError(f"corrupt {label}: an old-style {application} file, "
                              "not a zip archive")
    return open_zip(data, label)


def _parse(archive: zipfile.ZipFile, name: str, label: str) -> ElementTree.Element:
    """A part's XML root; KeyError when the part is missing."""
    xml = read_part(archive, name, label)
    try:
        return ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ExtractionError(f"corrupt {label}: malformed XML in {name} "
                              f"({str(exc)[:80]})") from exc


def _resolve(source: str, target: str) -> str | None:
    """The part a relationship of `source` points at, or None when it leaves the package."""
    if target.startswith("/"):
        name = posixpath.normpath(target.lstrip("/"))
    else:
        name = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
    return None if name.startswith("..") or name == "." else name


def _relationships(archive: zipfile.ZipFile, source: str,
                   label: str) -> dict[str, tuple[str, str]] | None:
    """Relationship id -> (type, part) for a part ("" for the package), or None when the part
    has no relationships part."""
    folder, base = posixpath.split(source)
    rels_name = posixpath.join(folder, "_rels", f"{base}.rels")
    try:
        root = _parse(archive, rels_name, label)
    except KeyError:
        return None
    found: dict[str, tuple[str, str]] = {}
    for rel in root.iter(f"{_REL_NS}Relationship"):
        rel_id, target = rel.get("Id"), rel.get("Target")
        if not rel_id or not target or rel.get("TargetMode") == "External":
            continue
        name = _resolve(source, target)
        if name is not None:
            found[rel_id] = (rel.get("Type") or "", name)
    return found


def _main_part(archive: zipfile.ZipFile, label: str, default: str) -> str:
    """The package's main part, as its relationships name it (default when they do not)."""
    try:
        rels = _relationships(archive, "", label) or {}
    except ExtractionError:  # the relationships are only a hint; the default may still be fine
        rels = {}
    for kind, name in rels.values():
        if kind.endswith("/officeDocument") and name in archive.NameToInfo:
            return name
    return default


def _r_attr(element: ElementTree.Element, name: str) -> str | None:
    for namespace in _R_NAMESPACES:
        value = element.get(f"{{{namespace}}}{name}")
        if value is not None:
            return value
    return None


def cell_text(value: object) -> str:
    """A spreadsheet value as text: dates and times in ISO form, whole numbers without ".0",
    other numbers as Python writes them, TRUE/FALSE, text on one line."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time() and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return " ".join(str(value).split())


@dataclass
class SheetWriter:
    """One sheet's lines: `Sheet N: name`, then `Row R: ...` for each row with text, as
    `header: value; ...` pairs when the first row with text is all labels, else as cells
    joined by " | ". Rows past MAX_SHEET_ROWS are refused and the sheet is marked cut."""

    number: int
    name: str
    limit: int = MAX_SHEET_ROWS
    lines: list[str] = field(default_factory=list)
    header: dict[int, str] | None = None
    seen_first: bool = False
    written: int = 0
    cut_after: int | None = None

    def add(self, first: int, last: int, cells: list[tuple[int, object]]) -> bool:
        """Rows `first`..`last` (the same cells repeated), given as (column, value) pairs of
        non-empty cells; False once the sheet is full (stop feeding it)."""
        texts = [(column, cell_text(value)) for column, value in cells]
        texts = [(column, text) for column, text in texts if text]
        if not texts:
            return True
        if self.written >= self.limit:
            self.cut_after = self.cut_after or first - 1
            return False
        label = f"Row {first}" if first == last else f"Rows {first}-{last}"
        if not self.seen_first:
            self.seen_first = True
            if len(texts) >= 2 and all(isinstance(value, str) for _, value in cells):
                self.header = dict(texts)
        if self.header is not None and self.written > 0:
            pairs = [f"{self.header.get(column) or get_column_letter(column)}: {text}"
                     for column, text in texts]
            body = "; ".join(pairs)
        else:
            body = " | ".join(text for _, text in texts)
        self.lines.append(f"{label}: {body}")
        self.written += 1
        return True

    def section(self) -> Section | None:
        """The sheet's section, or None when no row had text."""
        if not self.lines:
            return None
        name = " ".join(self.name.split())
        lines = [f"Sheet {self.number}: {name}" if name else f"Sheet {self.number}",
                 *self.lines]
        if self.cut_after is not None:
            lines.append(f"(cut: only the first {self.limit:,} rows with text are indexed; "
                         f"the sheet goes on after row {self.cut_after})")
        return Section(text=tidy("\n".join(lines)), page=self.number)


# --- PowerPoint ----------------------------------------------------------------------------------


def _name(tag: object) -> str | None:
    """The local name of a DrawingML/PresentationML element, "mc:X" for markup-compatibility
    wrappers, "dgm:X" for diagram ones, None for anything else (comments too)."""
    if not isinstance(tag, str) or not tag.startswith("{"):
        return None
    namespace, _, local = tag[1:].partition("}")
    if namespace in _DRAWING_NAMESPACES:
        return local
    if namespace == _MC_NS:
        return f"mc:{local}"
    if namespace in _DIAGRAM_NAMESPACES:
        return f"dgm:{local}"
    return None


def _placeholder_type(shape: ElementTree.Element) -> str | None:
    """A shape's placeholder type ("obj" when unstated), or None when it is no placeholder."""
    for properties in shape:
        if _name(properties.tag) in ("nvSpPr", "nvGraphicFramePr", "nvPicPr"):
            for child in properties:
                if _name(child.tag) == "nvPr":
                    for ph in child:
                        if _name(ph.tag) == "ph":
                            return ph.get("type") or "obj"
    return None


@dataclass
class _Frames:
    """Walks a slide's (or notes page's) shape tree, in order, into text lines."""

    diagram: Callable[[str], list[str]]  # a diagram's text, by its data relationship id
    noise: frozenset[str]
    find_title: bool
    title: str | None = None
    found_title: bool = False

    def walk(self, element: ElementTree.Element, out: list[str]) -> None:
        for child in element:
            name = _name(child.tag)
            if name in _NO_TEXT:
                continue
            if name == "mc:AlternateContent":
                self._alternate(child, out)
            elif name == "sp":
                kind = _placeholder_type(child)
                if kind in self.noise:
                    continue
                if self.find_title and not self.found_title and kind in _TITLE_PLACEHOLDERS:
                    self.found_title = True
                    lines: list[str] = []
                    self.walk(child, lines)
                    self.title = " ".join("".join(lines).split()) or None
                    continue
                self.walk(child, out)
            elif name == "txBody":
                _paragraphs(child, out)
            elif name == "tbl":
                _table(child, out)
            elif name == "dgm:relIds":
                rel_id = _r_attr(child, "dm")
                if rel_id:
                    out.extend(line + "\n" for line in self.diagram(rel_id))
            else:
                self.walk(child, out)

    def _alternate(self, element: ElementTree.Element, out: list[str]) -> None:
        """The first choice that gives text, else the fallback: never both (they repeat)."""
        options = [c for c in element if _name(c.tag) == "mc:Choice"]
        options += [c for c in element if _name(c.tag) == "mc:Fallback"]
        for option in options:
            lines: list[str] = []
            self.walk(option, lines)
            if "".join(lines).strip():
                out.extend(lines)
                return


def _runs(element: ElementTree.Element, out: list[str]) -> None:
    for child in element:
        name = _name(child.tag)
        if name == "t":
            out.append(child.text or "")
        elif name == "br":
            out.append("\n")
        elif name in _NO_TEXT:
            continue
        elif name == "mc:AlternateContent":
            for option in child:  # the first choice with text, else the fallback
                if _name(option.tag) in ("mc:Choice", "mc:Fallback"):
                    parts: list[str] = []
                    _runs(option, parts)
                    if "".join(parts).strip():
                        out.extend(parts)
                        break
        else:
            _runs(child, out)


def _paragraphs(body: ElementTree.Element, out: list[str]) -> None:
    """A text body: one line per a:p, a:br breaking lines inside one."""
    for paragraph in body:
        if _name(paragraph.tag) == "p":
            parts: list[str] = []
            _runs(paragraph, parts)
            out.append("".join(parts) + "\n")


def _table(table: ElementTree.Element, out: list[str]) -> None:
    """A DrawingML table: one line per row, cells tab-separated, merged-over cells left out."""
    for row in table:
        if _name(row.tag) != "tr":
            continue
        cells: list[str] = []
        for cell in row:
            if _name(cell.tag) != "tc" or cell.get("hMerge") in ("1", "true") \
                    or cell.get("vMerge") in ("1", "true"):
                continue
            lines: list[str] = []
            for body in cell:
                if _name(body.tag) == "txBody":
                    _paragraphs(body, lines)
            cells.append(" ".join("".join(lines).split()))
        if any(cells):
            out.append("\t".join(cells) + "\n")


def _diagram_text(root: ElementTree.Element) -> list[str]:
    """SmartArt's words: the text of each node in its data part."""
    lines: list[str] = []
    for point in root.iter():
        if _name(point.tag) != "dgm:pt" or (point.get("type") or "node") != "node":
            continue
        for child in point:
            if _name(child.tag) == "dgm:t":
                _paragraphs(child, lines)
    return [line.rstrip("\n") for line in lines if line.strip()]


class _Deck:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def slide_parts(self) -> list[str | None]:
        """Each slide's part, in the deck's order (None for a slide that is missing)."""
        main = _main_part(self.archive, "PPTX", "ppt/presentation.xml")
        try:
            root = _parse(self.archive, main, "PPTX")
        except KeyError as exc:
            raise ExtractionError(f"corrupt PPTX: no {main}") from exc
        if _name(root.tag) != "presentation":
            raise ExtractionError(f"corrupt PPTX: {main} is not a presentation")
        ids = [el for el in root.iter() if _name(el.tag) == "sldId"]
        if not ids:
            return []
        rels = _relationships(self.archive, main, "PPTX")
        if rels is None:
            folder, base = posixpath.split(main)
            raise ExtractionError(f"corrupt PPTX: no {posixpath.join(folder, '_rels', base)}"
                                  ".rels")
        parts: list[str | None] = []
        for slide_id in ids:
            kind, part = rels.get(_r_attr(slide_id, "id") or "", ("", ""))
            ok = kind.endswith("/slide") and part in self.archive.NameToInfo
            parts.append(part if ok else None)
        return parts

    def slide(self, number: int, part: str) -> Section | None:
        root = _parse(self.archive, part, "PPTX")
        rels = _relationships(self.archive, part, "PPTX") or {}
        frames = _Frames(self._diagram_reader(rels), _SLIDE_NOISE, find_title=True)
        body: list[str] = []
        for shapes in root:
            if _name(shapes.tag) == "cSld":
                frames.walk(shapes, body)
        notes: list[str] = []
        for kind, target in rels.values():
            if kind.endswith("/notesSlide") and target in self.archive.NameToInfo:
                notes_root = _parse(self.archive, target, "PPTX")
                notes_rels = _relationships(self.archive, target, "PPTX") or {}
                reader = _Frames(self._diagram_reader(notes_rels), _NOTES_NOISE,
                                 find_title=False)
                reader.walk(notes_root, notes)
                break
        body_text, notes_text = tidy("".join(body)), tidy("".join(notes))
        if not (frames.title or body_text or notes_text):
            return None
        header = f"Slide {number}: {frames.title}" if frames.title else f"Slide {number}"
        text = header + ("\n" + body_text if body_text else "")
        if notes_text:
            text += "\n\nNotes:\n" + notes_text
        return Section(text=tidy(text), page=number)

    def _diagram_reader(self, rels: dict[str, tuple[str, str]]) -> Callable[[str], list[str]]:
        def read(rel_id: str) -> list[str]:
            kind, part = rels.get(rel_id, ("", ""))
            if not kind.endswith("/diagramData") or part not in self.archive.NameToInfo:
                return []
            return _diagram_text(_parse(self.archive, part, "PPTX"))
        return read


def _pptx(data: bytes) -> Document:
    with _open_package(data, "PPTX", "PowerPoint") as archive:
        deck = _Deck(archive)
        sections = []
        for number, part in enumerate(deck.slide_parts(), 1):
            section = deck.slide(number, part) if part else None
            if section is not None:
                sections.append(section)
    if not sections:
        raise Skipped("no text")
    return Document(kind="pptx", sections=sections)


def extract_pptx(data: bytes) -> Document:
    """A PowerPoint deck: one section per slide with text, `page` its number in the deck, its
    text `Slide N: title`, the slide's text frames and tables, then `Notes:` and the notes."""
    return guarded("PPTX", _pptx, data)


# --- Excel ---------------------------------------------------------------------------------------


def _quiet_openpyxl() -> None:
    """openpyxl warns about every workbook feature it does not keep (data validation, slicers,
    default styles); none of that is about the text, so none of it reaches the person."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _xlsx(data: bytes) -> Document:
    with _open_package(data, "XLSX", "Excel") as archive:  # the size check, before openpyxl
        main = _main_part(archive, "XLSX", "xl/workbook.xml")
        if main not in archive.NameToInfo:
            raise ExtractionError(f"corrupt XLSX: no {main}")
    _quiet_openpyxl()
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True,
                                          keep_links=False)
    except Exception as exc:
        raise ExtractionError(f"corrupt XLSX: {_cause(exc)}") from exc
    sections: list[Section] = []
    try:
        for number, name in enumerate(workbook.sheetnames, 1):
            sheet = workbook[name]
            if not hasattr(sheet, "iter_rows"):  # a chart sheet
                continue
            if hasattr(sheet, "reset_dimensions"):  # trust the cells, not the stated size
                sheet.reset_dimensions()
            writer = SheetWriter(number, name, limit=MAX_SHEET_ROWS)
            for row_number, values in enumerate(sheet.iter_rows(values_only=True), 1):
                if row_number > MAX_ROW_NUMBER:
                    break
                cells = [(column, value) for column, value in enumerate(values[:MAX_COLUMNS], 1)
                         if not _blank(value)]
                if cells and not writer.add(row_number, row_number, cells):
                    break
            section = writer.section()
            if section is not None:
                sections.append(section)
    except (ExtractionError, Skipped):
        raise
    except Exception as exc:
        raise ExtractionError(f"corrupt XLSX: {_cause(exc)}") from exc
    finally:
        workbook.close()
    if not sections:
        raise Skipped("no text")
    return Document(kind="xlsx", sections=sections)


def extract_xlsx(data: bytes) -> Document:
    """An Excel workbook: one section per sheet with text (hidden ones too), `page` its number
    in the workbook, its text `Sheet N: name` and then `Row R: ...` lines; formulas give the
    values Excel last calculated."""
    return guarded("XLSX", _xlsx, data)
