"""Citations checked while the answer streams: only numbers of passages that were given reach
the person.

A model asked to cite [1]..[k] may cite [k+1], [0], a source it imagined, or write the
placeholder it was shown ("[source_id]"). Every bracketed group is parsed as it completes: the
numbers of passages given are kept (written as [1][2], which both faces turn into links),
the rest are removed and counted. Text after an opening bracket is held back until the
bracket closes or can no longer be a citation, so a half-written "[1" is never shown and then
taken back. This does not rely on the model complying: a small model may cite nothing, or
only "[1]".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_GROUP = re.compile(r"\[\s*(\d{1,4}(?:\s*(?:,|;|and|&)\s*\d{1,4})*)\s*\]")
_PLACEHOLDER = re.compile(r"\[\s*(?:source[_ ]?id|source|id|n|number|citation|\d+\s*-\s*\d+)"
                          r"\s*\]", re.I)
_OPEN = re.compile(r"\[[\d\s,;&and_a-zA-Z-]{0,24}$")  # what could still become one of the above


@dataclass
class CitationFilter:
    """Feed the answer's text as it streams; emit what may be shown."""

    k: int  # passages given, numbered 1..k
    cited: list[int] = field(default_factory=list)  # valid numbers, in order of first citation
    removed: int = 0  # citation numbers (and placeholders) taken out
    raw: list[str] = field(default_factory=list)  # what the model wrote, unfiltered
    _held: str = ""

    def feed(self, text: str) -> tuple[str, list[int]]:
        """(text to show now, passage numbers newly cited in it)."""
        self.raw.append(text)
        buf = self._held + text
        cut = buf.rfind("[")
        if cut >= 0 and _OPEN.fullmatch(buf[cut:]) and "]" not in buf[cut:]:
            self._held, buf = buf[cut:], buf[:cut]
        else:
            self._held = ""
        return self._clean(buf)

    def finish(self) -> tuple[str, list[int]]:
        """The text still held back (an unclosed bracket at the end), cleaned."""
        held, self._held = self._held, ""
        if re.fullmatch(r"\[[\d\s,;]*", held):  # a citation cut off: not shown
            self.removed += 1 if held.strip("[ ,;") else 0
            return "", []
        return self._clean(held)

    def _clean(self, text: str) -> tuple[str, list[int]]:
        new: list[int] = []

        def group(m: re.Match[str]) -> str:
            numbers = [int(x) for x in re.findall(r"\d+", m.group(1))]
            keep = []
            for n in numbers:
                if 1 <= n <= self.k:
                    if n not in keep:
                        keep.append(n)
                else:
                    self.removed += 1
            for n in keep:
                if n not in self.cited:
                    self.cited.append(n)
                    new.append(n)
            return "".join(f"[{n}]" for n in keep)

        def placeholder(_m: re.Match[str]) -> str:
            self.removed += 1
            return ""

        text = _GROUP.sub(group, text)
        text = _PLACEHOLDER.sub(placeholder, text)
        return text, new

    @property
    def raw_text(self) -> str:
        return "".join(self.raw)


def strip_markers(text: str) -> str:
    """A passage's own bracketed numbers ("[12]" in a paper's text), as "(12)": in the prompt
    they would read as citations of the sources."""
    return _GROUP.sub(lambda m: f"({m.group(1)})", text)


def uncited_sentences(answer: str) -> int:
    """Sentences of an answer that cite nothing (a measure, not a filter)."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if len(s) > 12]
    return sum(1 for s in sentences if not re.search(r"\[\d+\]", s))
