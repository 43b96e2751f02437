"""Result and failure types shared by every extractor.

They live apart from the dispatcher so the per-format modules can use them without importing
each other, and so callers can tell "broken" (worth reporting) from "deliberately skipped"
(normal, quiet) by exception type alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None  # 1-based page for PDFs, None for whole-document formats
    # read by OCR (a scanned page, an image): its lines, each with its place on the page and
    # its span in ``text`` (desktop.extract.ocr.OcrLine); None for text the file holds
    ocr: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Document:
    kind: str  # desktop.extract.kinds: "text", "pdf", "docx", "pptx", "image", ...
    sections: list[Section] = field(default_factory=list)
    encoding: str | None = None  # the codec used, for formats decoded from raw text

    @property
    def text(self) -> str:
        """All sections joined, for callers that do not care about pages."""
        return "\n\n".join(section.text for section in self.sections)


# how the reason of a file given up on for taking too long begins (not tried again until it
# changes, or the time limit does)
GAVE_UP = "gave up:"


@dataclass(frozen=True)
class Pages:
    """Progress within a file read page by page (OCR): pages done of total, and the seconds
    the last one took."""

    done: int
    total: int
    seconds: float


class _ReasonError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExtractionError(_ReasonError):
    """The file is broken or unreadable; ``reason`` is a short sentence for the user."""


class Skipped(_ReasonError):
    """The file is fine but deliberately not indexed (empty, binary, no text layer)."""


def tidy(text: str) -> str:
    """Lines without trailing spaces, at most one empty line in a row, no empty lines at the
    ends: how every extractor hands its text on."""
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
