"""Finding a passage again in a text that is not byte-for-byte the one it was cut from
(PDFium's page text against pypdf's, or a file edited since indexing): for highlighting it in
the preview, and for anything else that must point at a passage in a file's text."""

from __future__ import annotations

import unicodedata

_ANCHOR = 40  # folded characters matched at each end when the whole passage is not found


def _fold(text: str) -> tuple[str, list[int]]:
    """The text without whitespace or invisible characters, lower-cased and NFKC-normalised,
    with the index in ``text`` of every folded character."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            continue
        norm = unicodedata.normalize("NFKC", ch) if ord(ch) > 127 else ch
        for c in norm:
            if c.isspace() or unicodedata.category(c) in ("Cc", "Cf"):
                continue
            low = c.lower()
            chars.append(low if len(low) == 1 else c)
            where.append(i)
    return "".join(chars), where


def locate_passage(haystack: str, passage: str) -> tuple[int, int] | None:
    """Where ``passage`` lies in ``haystack`` as ``(start, end)``, ignoring whitespace, case and
    Unicode compatibility forms; else the span between a matching head and tail; else None."""
    hay, where = _fold(haystack)
    needle, _ = _fold(passage)
    if not needle or not hay:
        return None

    def span(a: int, b: int) -> tuple[int, int]:
        b = min(max(b, a + 1), len(hay))
        return where[a], where[b - 1] + 1

    at = hay.find(needle)
    if at >= 0:
        return span(at, at + len(needle))
    n = min(_ANCHOR, len(needle) // 3)
    if n < 8:
        return None
    head = hay.find(needle[:n])
    tail = hay.find(needle[-n:], head + n if head >= 0 else 0)
    if head >= 0 and tail >= 0 and tail + n - head <= 2 * len(needle):
        return span(head, tail + n)
    if head >= 0:
        return span(head, head + len(needle))
    if tail >= 0:
        return span(max(0, tail + n - len(needle)), tail + n)
    return None


def same_passage(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def line_of(text: str, index: int) -> int:
    """1-based line number of the character at ``index``."""
    return text.count("\n", 0, max(0, index)) + 1
