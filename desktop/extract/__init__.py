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
from desktop.extract.text import decode_text, extract_text

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "ExtractionError",
    "Section",
    "Skipped",
    "decode_text",
    "extract",
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
