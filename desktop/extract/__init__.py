"""Turning a file's bytes into searchable text, whatever its format.

The indexer has already read and hashed the bytes, so extraction never touches the disk. Its
contract is deliberately narrow: it returns a :class:`Document`, or raises :class:`Skipped`
(not worth indexing) or :class:`ExtractionError` (broken, with a reason to show the user); a
malformed file must never surface as any other exception and stop an indexing run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import PurePath

from desktop.extract import kinds
from desktop.extract.docx import extract_docx
from desktop.extract.ebook import extract_epub
from desktop.extract.html import extract_html
from desktop.extract.image import extract_image
from desktop.extract.kinds import SUPPORTED_SUFFIXES, kind_for
from desktop.extract.mail import extract_eml, extract_mbox
from desktop.extract.model import Document, ExtractionError, Pages, Section, Skipped
from desktop.extract.notebook import extract_ipynb
from desktop.extract.odf import extract_odp, extract_ods, extract_odt
from desktop.extract.office import extract_pptx, extract_xlsx
from desktop.extract.pdf import extract_pdf
from desktop.extract.rtf import extract_rtf
from desktop.extract.settings import ExtractSettings
from desktop.extract.table import extract_csv
from desktop.extract.text import decode_text, extract_text

__all__ = [
    "ISOLATED_KINDS",
    "SUPPORTED_SUFFIXES",
    "Document",
    "ExtractSettings",
    "ExtractionError",
    "Pages",
    "Section",
    "Skipped",
    "decode_text",
    "extract",
    "extract_file",
    "kind_for",
]

_EXTRACTORS: dict[str, Callable[[bytes], Document]] = {
    "text": partial(extract_text, "text"),
    "markdown": partial(extract_text, "markdown"),
    "rst": partial(extract_text, "rst"),
    "code": partial(extract_text, "code"),
    "html": extract_html,
    "docx": extract_docx,
    "pptx": extract_pptx,
    "xlsx": extract_xlsx,
    "odt": extract_odt,
    "ods": extract_ods,
    "odp": extract_odp,
    "epub": extract_epub,
    "rtf": extract_rtf,
    "email": extract_eml,
    "mbox": extract_mbox,
    "notebook": extract_ipynb,
    "csv": extract_csv,
    "tsv": partial(extract_csv, delimiter="\t"),
}
_FORMAT_LABELS = {"pdf": "PDF", "docx": "DOCX", "html": "HTML", "pptx": "PPTX", "xlsx": "XLSX",
                  "odt": "ODT", "ods": "ODS", "odp": "ODP", "epub": "EPUB", "rtf": "RTF",
                  "email": "e-mail", "mbox": "mailbox", "notebook": "notebook", "csv": "CSV",
                  "tsv": "TSV", "image": "image"}
# the binary Office formats, by suffix: what to say, and what to save them as
_LEGACY = {".doc": ("Word 97-2003 document", ".docx"), ".dot": ("Word 97-2003 template", ".docx"),
           ".xls": ("Excel 97-2003 workbook", ".xlsx"), ".xlt": ("Excel 97-2003 template", ".xlsx"),
           ".ppt": ("PowerPoint 97-2003 presentation", ".pptx"),
           ".pps": ("PowerPoint 97-2003 slide show", ".pptx"),
           ".pot": ("PowerPoint 97-2003 template", ".pptx")}


def legacy_reason(name: str | PurePath) -> str:
    """Why an old binary Office file is not indexed, and what would make it searchable."""
    suffix = PurePath(name).suffix.lower()
    what, instead = _LEGACY.get(suffix, ("old Office file", "its modern format"))
    return f"not supported: {suffix} ({what}); save it as {instead} to make it searchable"


# parsed in a child process with a time limit (isolated.py); the rest in-process
ISOLATED_KINDS = frozenset({"pdf", "docx", "pptx", "xlsx", "odt", "ods", "odp", "epub", "rtf",
                            "email", "mbox", "image"})
# every kind has an extractor, but for the old binary Office formats (reported by name)
assert set(_EXTRACTORS) | {"pdf", "image", "legacy"} == set(kinds.kind_for("x" + s) or ""
                                                     for s in SUPPORTED_SUFFIXES)


def extract_file(name: str | PurePath, data: bytes, settings: ExtractSettings | None = None,
                 progress: Callable[[Pages], None] | None = None,
                 stopping: Callable[[], bool] | None = None) -> Document:
    """extract() as the indexer runs it: the complex formats in the extraction child, with
    its time limit, and no file's text beyond the limit on extracted text."""
    settings = settings or ExtractSettings()
    kind = kind_for(name)
    limit = settings.max_text_chars
    if kind in _PLAIN and len(data) > limit * 4:  # (4 bytes a character at the most)
        raise Skipped(_too_large(len(data), settings))
    if kind in ISOLATED_KINDS:
        from desktop.extract.isolated import shared

        doc = shared(settings.timeout_s).extract(str(name), data, settings=settings,
                                                 progress=progress, stopping=stopping)
    else:
        doc = extract(name, data, settings)
    chars = sum(len(s.text) for s in doc.sections)
    if chars > limit:
        raise Skipped(_too_large(chars, settings))
    return doc


_PLAIN = frozenset({"text", "markdown", "rst", "code", "html", "csv", "tsv", "notebook"})


def _too_large(size: int, settings: ExtractSettings) -> str:
    return (f"too large: {size / 1e6:,.1f} MB of text, limit {settings.max_text_mb:g} MB "
            "(Settings, largest text per file)")


def extract(name: str | PurePath, data: bytes, settings: ExtractSettings | None = None,
            progress: Callable[[Pages], None] | None = None) -> Document:
    """Extract the text of a file called ``name`` (only its suffix matters) from its bytes.

    ``settings`` say what is read by OCR (scanned PDF pages by default; images only when
    asked), and ``progress`` hears of each page OCR reads.

    Raises :class:`Skipped` for unsupported, empty, binary or text-less files and
    :class:`ExtractionError` for files that are damaged or locked.
    """
    kind = kind_for(name)
    if kind is None:
        raise Skipped("unsupported file type")
    if kind == "legacy":
        raise Skipped(legacy_reason(name))
    settings = settings or ExtractSettings()
    if kind == "image" and not settings.ocr_images:
        raise Skipped("an image (reading text in images is off)")
    if not data:
        raise Skipped("empty file")
    try:
        if kind == "pdf":
            return extract_pdf(data, ocr=settings.ocr_pdfs, progress=progress)
        if kind == "image":
            return extract_image(data, progress=progress)
        return _EXTRACTORS[kind](data)
    except (ExtractionError, Skipped):
        raise
    except Exception as exc:  # last line of defence: a parser bug must not stop indexing
        label = _FORMAT_LABELS.get(kind, "text")
        raise ExtractionError(f"corrupt {label}: {type(exc).__name__}") from exc
