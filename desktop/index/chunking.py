"""Split extracted text into passages measured in the active model's own tokens.

A passage must never be longer than the model takes: llama-cpp-python's truncation would cut
off the trailing EOS/SEP and, for encoders, an oversized batch aborts the process. So the text
is cut into units (sentences, else lines, else words, else raw characters), units are counted
with the model's tokenizer and packed greedily, and every finished passage is tokenized once
more in full, with its document template and special tokens, to prove it fits. Those final
token ids are what gets embedded; nothing is tokenized twice downstream.

Each passage keeps where it came from (page, character offsets, line range) so a result can be
shown in place.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

# A sentence ends with . ! ? (or CJK full stops) followed by whitespace; a line ends with \n.
_UNIT_RE = re.compile(r"[^\n]*?(?:[.!?\u3002\uff01\uff1f]+(?=\s)|\n|$)\s*", re.S)
_WORD_RE = re.compile(r"\S+\s*|\s+")


class Tokenizer(Protocol):
    def count(self, text: str) -> int:
        """Tokens of the text alone, without special tokens."""

    def encode_document(self, text: str) -> list[int]:
        """The full token sequence embedded for a passage (template, specials, EOS)."""


@dataclass(frozen=True)
class Chunk:
    text: str
    tokens: list[int]
    page: int | None
    start: int  # character offsets into the section's text
    end: int
    line_start: int  # 1-based, inclusive
    line_end: int
    ordinal: int = 0


@dataclass(frozen=True)
class ChunkSettings:
    max_tokens: int  # the whole sequence, special tokens included
    overlap: int = 0  # tokens repeated from the end of the previous passage

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError("passages need at least 8 tokens")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise ValueError("overlap must be less than half the passage length")


def _units(text: str, tok: Tokenizer, budget: int) -> list[tuple[int, int, int]]:
    """(start, end, tokens) spans that tile the text; none longer than budget tokens."""
    out: list[tuple[int, int, int]] = []
    for m in _UNIT_RE.finditer(text):
        s, e = m.span()
        if s == e:
            continue
        n = tok.count(text[s:e])
        if n <= budget:
            out.append((s, e, n))
            continue
        for w in _WORD_RE.finditer(text, s, e):
            ws, we = w.span()
            _cut(text, ws, we, tok, budget, out)
    return out


def _cut(text: str, s: int, e: int, tok: Tokenizer, budget: int,
         out: list[tuple[int, int, int]]) -> None:
    """Append text[s:e] as units of at most budget tokens, cutting blindly where needed.

    A "word" longer than a passage (a URL, base64, a table row) is cut into pieces of about
    half a passage; tokens are not spread evenly over the characters, so every piece is
    counted again and cut further if it is still too long.
    """
    n = tok.count(text[s:e])
    if n <= budget or e - s <= 1:
        out.append((s, e, n))
        return
    step = max(1, (e - s) * budget // (n * 2))  # < (e - s) / 2: the pieces always shrink
    for cs in range(s, e, step):
        _cut(text, cs, min(e, cs + step), tok, budget, out)


def chunk_text(text: str, tok: Tokenizer, settings: ChunkSettings, *, page: int | None = None,
               first_ordinal: int = 0) -> Iterator[Chunk]:
    """Yield passages covering the text, each proven to fit the model."""
    overhead = len(tok.encode_document(""))
    budget = settings.max_tokens - overhead
    if budget < 4:
        raise ValueError("the document template leaves no room for text")
    units = _units(text, tok, budget)
    newlines = [m.start() for m in re.finditer("\n", text)]
    ordinal = first_ordinal
    i = fresh = 0  # units[i:] go into the next passage; units[fresh:] are in none yet
    last_end = -1
    while fresh < len(units):
        j, total = i, 0
        while j < len(units) and total + units[j][2] <= budget:
            total += units[j][2]
            j += 1
        lowest = fresh + 1  # every passage takes in new text, never only a repeated tail
        j = max(j, lowest)
        while True:
            chunk = _make_chunk(text, units[i:j], tok, newlines, page, ordinal)
            if chunk is None or len(chunk.tokens) <= settings.max_tokens or j == lowest:
                break
            j -= 1  # token counts are not quite additive for BPE: drop a unit and retry
        if chunk is not None and len(chunk.tokens) > settings.max_tokens:
            if i < fresh:  # the repeated tail leaves no room: go on without it
                i = fresh
                continue
            # One unit that does not fit once tokenized in full, with the template: cut it in
            # two and pack again, so that no text is lost.
            s, e, _ = units[i]
            if e - s > 1:
                mid = (s + e) // 2
                units[i:i + 1] = [(s, mid, tok.count(text[s:mid])),
                                  (mid, e, tok.count(text[mid:e]))]
                continue
            chunk = None  # a single character that cannot fit: nothing to embed
        if chunk is not None and chunk.end <= last_end:
            chunk = None  # the new units held only whitespace: nothing the last one lacks
        if chunk is not None:
            yield chunk
            ordinal += 1
            last_end = chunk.end
        fresh = j
        if j >= len(units):
            break
        if chunk is None:
            i = j
        else:
            i = _overlap_start(units, i, j, min(settings.overlap, budget - units[j][2]),
                               chunk.start)


def _overlap_start(units: Sequence[tuple[int, int, int]], i: int, j: int, overlap: int,
                   after: int) -> int:
    """Where the next passage starts: up to overlap tokens of units before j, all of them
    starting after the character offset `after` (where this passage's text starts).

    The caller leaves room for unit j in overlap, so the next passage always takes in new text
    rather than repeating a tail of this one.
    """
    k, carried = j, 0
    while (k - 1 > i and units[k - 1][0] > after
           and carried + units[k - 1][2] <= overlap):
        k -= 1
        carried += units[k][2]
    return k


def _make_chunk(text: str, units: Sequence[tuple[int, int, int]], tok: Tokenizer,
                newlines: list[int], page: int | None, ordinal: int) -> Chunk | None:
    start, end = units[0][0], units[-1][1]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start == end:
        return None
    body = text[start:end]
    line_start = bisect.bisect_right(newlines, start - 1) + 1
    line_end = bisect.bisect_right(newlines, end - 1) + 1
    return Chunk(body, tok.encode_document(body), page, start, end, line_start, line_end,
                 ordinal)
