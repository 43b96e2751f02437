"""The one user message an answer is asked with, fitted to the chat model's context.

Instructions, the question, the numbered sources best first, the question again (a model
answers best from what is at the start of its context and reads the question better after
the sources: Liu et al. 2023, "Lost in the middle"), all in one user message, since
Mistral's templates have no system role. Each source is headed by its number and its place
(file, page or lines) and its own bracketed numbers are rewritten so they cannot be taken for
citations. Sources are added best first while they fit the budget: the context, less the
template, the instructions and the question twice, less the answer's allowance; a source
that does not fit whole is cut at a sentence when it is the first, else left out. Tokens are
counted with the chat model's own tokenizer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from desktop.ask.citations import strip_markers
from desktop.extract.kinds import section_place

REFUSAL = "I could not find this in your documents."
INSTRUCTIONS = (
    "Answer the question using only the numbered sources below, which come from the "
    "person's own documents (some may be irrelevant). Write a short answer of a few "
    "sentences. After every sentence, cite the sources it rests on by their numbers in "
    "square brackets, like [1] or [2][3]. Do not use anything you know that the sources do "
    f"not say. If the sources do not contain the answer, reply exactly: {REFUSAL}"
)
MARGIN_TOKENS = 16  # what the template's rendering and joining may add beyond the estimate


@dataclass(frozen=True)
class Source:
    """A passage given to the model, numbered from 1."""

    n: int
    path: str
    page: int | None
    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    kind: str

    def place(self) -> str:
        name = os.path.basename(self.path)
        if self.page:
            return f"{name}, {section_place(self.kind, self.page)}"
        if self.line_start and self.line_end and self.line_end > self.line_start:
            return f"{name}, lines {self.line_start}-{self.line_end}"
        if self.line_start:
            return f"{name}, line {self.line_start}"
        return name

    def block(self, text: str | None = None) -> str:
        body = self.text if text is None else text
        return f"[{self.n}] ({self.place()})\n{strip_markers(body).strip()}"

    def to_dict(self) -> dict:
        return {"n": self.n, "path": self.path, "page": self.page, "start": self.start,
                "end": self.end, "line_start": self.line_start, "line_end": self.line_end}


def message(question: str, blocks: Sequence[str]) -> str:
    q = " ".join(question.split())
    sources = "\n\n".join(blocks) if blocks else "(none)"
    return f"{INSTRUCTIONS}\n\nQuestion: {q}\n\nSources:\n\n{sources}\n\nQuestion: {q}"


def fit(question: str, candidates: Sequence[Source], count: Callable[[str], int],
        budget: int) -> tuple[list[Source], str]:
    """The sources that fit `budget` tokens of message (best first, renumbered 1..n) and the
    message itself."""
    chosen: list[Source] = []
    blocks: list[str] = []
    used = count(message(question, []))
    for cand in candidates:
        src = Source(len(chosen) + 1, cand.path, cand.page, cand.start, cand.end,
                      cand.line_start, cand.line_end, cand.text, cand.kind)
        block = src.block()
        cost = count(block) + 4  # (the blank line between sources)
        if used + cost <= budget:
            chosen.append(src)
            blocks.append(block)
            used += cost
            continue
        if not chosen:  # the best passage alone is too long: its start, at a sentence
            text = _cut(src.text, budget - used - count(src.block("")) - 8, count)
            if text:
                chosen.append(Source(1, src.path, src.page, src.start, src.end,
                                     src.line_start, src.line_end, text, src.kind))
                blocks.append(chosen[0].block())
                used = count(message(question, blocks))
        break  # (the next ones are worse: a shorter one is not worth its lower rank)
    return chosen, message(question, blocks)


def _cut(text: str, tokens: int, count: Callable[[str], int]) -> str:
    if tokens <= 8:
        return ""
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits, by bisection on characters
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    stop = max(cut.rfind(". "), cut.rfind("\n"))
    return (cut[:stop + 1] if stop > len(cut) // 2 else cut).rstrip() + " …"
