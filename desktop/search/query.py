"""A search as either face asks for it: the modes, the filters and their meaning, the hit.

Light on purpose (no LanceDB, no llama.cpp): the CLI builds its arguments from it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (imported by the CLI before it knows it needs LanceDB)
    from desktop.index.store import Store

MODES = ("semantic", "keyword", "hybrid")
RRF_K = 60
# the file-type filter (the window's "All types" box, `semdex search --type`) -> the kinds
# desktop.extract.kinds gives files
TYPE_GROUPS: dict[str, tuple[str, ...]] = {
    "pdf": ("pdf",),
    "docx": ("docx", "odt", "rtf"),
    "slides": ("pptx", "odp"),
    "sheets": ("xlsx", "ods", "csv", "tsv"),
    "ebook": ("epub",),
    "mail": ("email", "mbox"),
    "image": ("image",),
    "text": ("text", "markdown", "rst"),
    "html": ("html",),
    "code": ("code", "notebook"),
}


@dataclass(frozen=True)
class Filters:
    """Which passages a search may return: the same meaning in the window and the CLI.
    Applied by the store before ranking, so a narrow filter never returns fewer hits than
    there are."""

    kinds: tuple[str, ...] = ()  # file kinds (desktop.extract.kinds); () all
    folder: str | None = None  # only files under this folder
    since: float | None = None  # only files modified at or after (epoch seconds)
    until: float | None = None  # ...and before

    @classmethod
    def of(cls, types: Sequence[str] = (), folder: str | None = None,
           since: float | None = None, until: float | None = None) -> Filters:
        """From type names (TYPE_GROUPS' keys) and a folder as a person gives them."""
        unknown = [t for t in types if t not in TYPE_GROUPS]
        if unknown:
            raise ValueError(f"unknown file type {unknown[0]!r}; use one of "
                             f"{', '.join(TYPE_GROUPS)}")
        kinds = tuple(k for t in dict.fromkeys(types) for k in TYPE_GROUPS[t])
        return cls(kinds, os.path.abspath(os.path.expanduser(folder)) if folder else None,
                   since, until)

    def __bool__(self) -> bool:
        return bool(self.kinds or self.folder or self.since is not None
                    or self.until is not None)

    def where(self, store: Store) -> str | None:
        return store.where_clause(self.kinds, self.folder, self.since, self.until)


NO_FILTER = Filters()


@dataclass(frozen=True)
class Query:
    """One search as either face asks for it."""

    text: str
    mode: str = "hybrid"
    k: int = 10
    per_file: int | None = 3
    task: str | None = None
    instruction: str | None = None
    filters: Filters = NO_FILTER


@dataclass
class Hit:
    path: str
    score: float
    page: int | None
    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    kind: str
    rank: int = 0
    ocr: bool = False  # read by OCR from a scanned page or an image
    # ...and then the lines OCR read on its page, [start, end, x0, y0, x1, y1] each (offsets
    # in the page's text, the box as fractions of the page): where to highlight it
    ocr_lines: list[Any] | None = field(default=None, repr=False, compare=False)
