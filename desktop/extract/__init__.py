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

from desktop.extract.docx import extract_docx
from desktop.extract.html import extract_html
from desktop.extract.kinds import SUPPORTED_SUFFIXES, kind_for
from desktop.extract.model import Document, ExtractionError, Section, Skipped
from desktop.extract.pdf import extract_pdf
from desktop.extract.settings import ExtractSettings
from desktop.extract.text import decode_text, extract_text

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "ExtractSettings",
    "ExtractionError",
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
    "pdf": extract_pdf,
    "docx": extract_docx,
}
_FORMAT_LABELS = {"pdf": "PDF", "docx": "DOCX", "html": "HTML"}


# parsed in a child process with a time limit (isolated.py); the rest in-process
ISOLATED_KINDS = frozenset({"pdf", "docx", "pptx", "xlsx", "odt", "ods", "odp", "epub", "rtf",
                            "email", "mbox", "image"})


def extract_file(name: str | PurePath, data: bytes,
                 settings: ExtractSettings | None = None) -> Document:
    """extract() as the indexer runs it: the complex formats in the extraction child, with
    its time limit, and no file's text beyond the limit on extracted text."""
    settings = settings or ExtractSettings()
    kind = kind_for(name)
    limit = settings.max_text_chars
    if kind in _PLAIN and len(data) > limit * 4:  # (4 bytes a character at the most)
        raise Skipped(_too_large(len(data), settings))
    if kind in ISOLATED_KINDS:
        from desktop.extract.isolated import shared

        doc = shared(settings.timeout_s).extract(str(name), data)
    else:
        doc = extract(name, data)
    chars = sum(len(s.text) for s in doc.sections)
    if chars > limit:
        raise Skipped(_too_large(chars, settings))
    return doc


_PLAIN = frozenset({"text", "markdown", "rst", "code", "html", "csv", "notebook"})


def _too_large(size: int, settings: ExtractSettings) -> str:
    return (f"too large: {size / 1e6:,.1f} MB of text, limit {settings.max_text_mb:g} MB "
            "(Settings, largest text per file)")


def extract(name: str | PurePath, data: bytes) -> Document:
    """Extract the text of a file called ``name`` (only its suffix matters) from its bytes.

    Raises :class:`Skipped` for unsupported, empty, binary or text-less files and
    :class:`ExtractionError` for files that are damaged or locked.
    """
    kind = kind_for(name)
    if kind is None:
        raise Skipped("unsupported file type")
    if not data:
        raise Skipped("empty file")
    try:
        return _EXTRACTORS[kind](data)
    except (ExtractionError, Skipped):
        raise
    except Exception as exc:  # last line of defence: a parser bug must not stop indexing
        label = _FORMAT_LABELS.get(kind, "text")
        raise ExtractionError(f"corrupt {label}: {type(exc).__name__}") from exc
