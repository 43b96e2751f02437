"""Answer a query with the best passages: semantic, keyword, or both fused by rank.

Hybrid uses reciprocal rank fusion, which needs no score calibration between cosine similarity
and BM25. At most `per_file` passages of one file are returned so a single long document cannot
fill the page. A passage is returned only while its file row vouches for its content hash: the
index never shows text that is no longer on disk, even right after a crash.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from desktop.index.store import NOTHING, Store
from desktop.models.embedder import Embedder
from desktop.search.query import MODES, NO_FILTER, RRF_K, Filters, Hit

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads that run the keyword half of a hybrid search beside the semantic half."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="semdex-search")
        return _executor


def _cap_per_file(rows: list[dict], per_file: int | None, k: int) -> list[dict]:
    if not per_file:
        return rows[:k]
    counts: dict[str, int] = {}
    out = []
    for r in rows:
        n = counts.get(r["file_id"], 0)
        if n < per_file:
            counts[r["file_id"]] = n + 1
            out.append(r)
            if len(out) == k:
                break
    return out


def _valid(store: Store, rows: list[dict]) -> list[dict]:
    valid = store.valid_hashes(r["file_id"] for r in rows)
    return [r for r in rows if valid.get(r["file_id"]) == r["hash"]]


def _fuse(lists: Sequence[list[dict]]) -> list[dict]:
    scores: dict[str, float] = {}
    rows: dict[str, dict] = {}
    for ranked in lists:
        for rank, r in enumerate(ranked):
            scores[r["id"]] = scores.get(r["id"], 0.0) + 1.0 / (RRF_K + rank + 1)
            rows.setdefault(r["id"], r)
    order = sorted(scores, key=lambda i: -scores[i])
    return [{**rows[i], "score": scores[i]} for i in order]


def search_vector(store: Store, vector: np.ndarray | None, query: str, *, mode: str = "hybrid",
                  k: int = 10, per_file: int | None = 3, filters: Filters = NO_FILTER
                  ) -> list[Hit]:
    """Search with an already embedded query (None for keyword mode)."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    total = store.count_chunks()
    if k <= 0 or not total:
        return []
    where = filters.where(store)
    if where == NOTHING:
        return []
    if where:
        total = store.count_chunks(where)
        if not total:
            return []
    pool = max(50, k * (per_file or 1) * 4)
    while True:
        runs: list[Callable[[], list[dict]]] = []
        if mode in ("semantic", "hybrid"):
            assert vector is not None
            runs.append(functools.partial(store.vector_search, vector, pool, where,
                                          filtered_rows=total if where else None))
        if mode in ("keyword", "hybrid") and query.strip():
            runs.append(functools.partial(store.keyword_search, query, pool, where))
        if len(runs) == 2:  # hybrid: both rankings at once (LanceDB works outside the GIL)
            other = _pool().submit(runs[1])
            found = [runs[0](), other.result()]
        else:
            found = [run() for run in runs]
        lists = [_valid(store, rows) for rows in found]
        rows = lists[0] if len(lists) == 1 else _fuse(lists) if lists else []
        capped = _cap_per_file(rows, per_file, k)
        if len(capped) >= k or pool >= total:
            break
        pool *= 4  # many passages from the same files: look deeper
    # scanned pages: only PDFs and images are ever read by OCR
    scanned = store.ocr_lines((r["hash"], r["page"] or 0) for r in capped
                              if r["kind"] in ("pdf", "image"))
    hits = []
    for i, r in enumerate(capped):
        lines = scanned.get((r["hash"], r["page"] or 0))
        hits.append(Hit(path=r["path"], score=float(r["score"]), page=r["page"],
                        start=r["start"], end=r["end"], line_start=r["line_start"],
                        line_end=r["line_end"], text=r["text"], kind=r["kind"], rank=i + 1,
                        ocr=lines is not None, ocr_lines=lines))
    return hits


def search(store: Store, embedder: Embedder | None, query: str, *, mode: str = "hybrid",
           k: int = 10, per_file: int | None = 3, task: str | None = None,
           instruction: str | None = None, filters: Filters = NO_FILTER) -> list[Hit]:
    vector = None
    if mode != "keyword":
        if embedder is None:
            raise ValueError(f"{mode} search needs the model")
        vector = embedder.embed_queries([query], task, instruction)[0]
    return search_vector(store, vector, query, mode=mode, k=k, per_file=per_file,
                         filters=filters)

