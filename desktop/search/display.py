"""How a hit is shown, the same way on the command line and in the window: its score on a
scale a person can read, where it is in the file, its folder with ``~`` for home, a snippet,
and the JSON the CLI prints."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from desktop.extract.kinds import section_place
from desktop.search.query import RRF_K, Hit

BEST_HYBRID = 2.0 / (RRF_K + 1)  # a hybrid (reciprocal-rank) score: first in both rankings


def display_score(score: float, mode: str) -> float:
    """Hybrid scores are reciprocal-rank sums (at most 2/61, first in both rankings): shown on
    a 0-1 scale of that best, not as 0.033. Cosine similarity and BM25 are shown as they are."""
    if mode == "hybrid":
        return min(1.0, score / BEST_HYBRID)
    return score


def score_text(score: float, mode: str) -> str:
    if mode == "keyword":
        return f"{score:.1f}"  # BM25: unbounded
    return f"{display_score(score, mode):.2f}"  # 0-1


def location(hit: Hit) -> str:
    """"p. 3", "slide 2", "lines 10-14" or "line 7", and ", OCR" for text read from a scan or
    an image (the window translates its own)."""
    if not getattr(hit, "ocr", False):
        return _place(hit)
    if hit.kind == "image" and not hit.page:  # lines of a photo are no place to go to
        return "OCR"
    return _place(hit) + ", OCR"


def _place(hit: Hit) -> str:
    if hit.page:
        return f"p. {hit.page}" if hit.kind == "pdf" else section_place(hit.kind, hit.page)
    if hit.line_start and hit.line_end and hit.line_end != hit.line_start:
        return f"lines {hit.line_start}-{hit.line_end}"
    return f"line {hit.line_start or 1}"


def short_path(path: str) -> str:
    """The path with the home folder as ``~``."""
    home = str(Path.home())
    if path == home or path.startswith(home + os.sep):
        return "~" + path[len(home):]
    return path


def short_folder(path: str) -> str:
    return short_path(os.path.dirname(path))


def hit_json(hit: Hit, mode: str) -> dict[str, Any]:
    """A hit as `semdex search --json` gives it: the raw score and the 0-1 one shown."""
    return {"path": hit.path, "score": round(hit.score, 6),
            "display_score": round(display_score(hit.score, mode), 4), "page": hit.page,
            "start": hit.start, "end": hit.end, "line_start": hit.line_start,
            "line_end": hit.line_end, "kind": hit.kind, "ocr": hit.ocr, "text": hit.text}


_WORD = re.compile(r"\w+", re.U)


def snippet(text: str, query: str, width: int = 240) -> str:
    """The stretch of a passage where the query's words are densest, on one line."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    words = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
    best, best_score = 0, -1
    for start in range(0, len(flat) - width + 1, max(1, width // 6)):
        window = flat[start:start + width].lower()
        score = sum(window.count(w) for w in words)
        if score > best_score:
            best, best_score = start, score
    if best:
        cut = flat.find(" ", best)
        best = cut + 1 if 0 <= cut < best + 20 else best
    out = flat[best:best + width]
    return ("… " if best else "") + out + (" …" if best + width < len(flat) else "")
