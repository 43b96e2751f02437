"""Which indexes a model's tables carry, decided by the writer from their size.

- **Vectors.** Below VECTOR_INDEX_MIN_FLOATS (rows x dimensions) search is an exact scan: one
  pass over the vectors, fast at that size and never wrong. Above it an IVF_RQ index (RaBitQ,
  RQ_BITS bits a dimension) with the dot metric (the store's; ../shared/SCALE.md: a metric
  other than the index's falls back to a scan), searched with NPROBES partitions and
  re-ranked exactly over about REFINE_CANDIDATES candidates (refine_factor). bench/ann_tune.py
  chose it (README, *Choosing the vector index*): at 1M x 384 IVF_PQ (48 sub-vectors)
  reached recall@10 0.88 re-ranking ten times the hits and trained in 107 s, while 4-bit
  IVF_RQ reached 1.00 re-ranking twice the hits, at 7 ms, trained in 32 s; at 100k x 4096
  it gave 0.99 at 9 ms; 1-bit RQ needed five to ten times the re-ranking for 0.93-0.99,
  IVF_SQ was three to ten times slower. Partitions hold ROWS_PER_PARTITION rows (fewer for
  wide vectors, so that NPROBES of them stay a small part of the table). New rows are folded
  in by optimize() as delta segments, and searched exactly until then; the index is built
  again when the table has grown GROWTH_REBUILD-fold since it was trained, holds more than
  MAX_DELTAS segments, or its measured recall has dropped under RECALL_FLOOR: at most every
  RECALL_PROBE_SECONDS the writer searches PROBE_QUERIES stored vectors both through the
  index and exactly, and books the recall@10.
- **Filters.** A filter that keeps under EXACT_FILTERED_FLOATS (rows x dimensions) is scanned
  exactly: every passage it keeps, in exact order (bench/scale.py at 1M x 384: 7 ms for 1,000
  kept passages, 18 ms for 10,000, 28 ms for 20,000, where the index takes about 20). A wider
  one goes through the index, searching FILTERED_PROBE_SHARE of the partitions (_WIDE above
  1024 dimensions, whose partitions are smaller; the query's
  nearest NPROBES hold too few of the nearest kept passages: recall@10 0.73 to 0.92 for a 2%
  folder; 0.97 to 1.0 with 40%), and all of them when that returns fewer hits than asked for
  and the filter keeps, so that a folder far from the query still gives all it holds.
- **Scalars.** BTREE on the passage id, file id and path and BITMAP on the kind (passages);
  BTREE on the file id and path and BITMAP on the folder (files), once a table has
  SCALAR_INDEX_MIN_ROWS rows: the prefilters of search and the writer's lookups by file then
  read an index instead of a column.

Only the writer builds them (Store.optimize, under the writer lock); a search never does. What
was built, and at what size, is kept beside the tables in `index-builds.json`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from desktop.atomic import write_atomic

log = logging.getLogger(__name__)

VECTOR_INDEX_MIN_FLOATS = 16_000_000  # ~42k x 384, ~4k x 4096 (64 MB of vectors; bench/scale.py)
SCALAR_INDEX_MIN_ROWS = 5_000
GROWTH_REBUILD = 2.0
MAX_DELTAS = 8
ROWS_PER_PARTITION = 4096  # up to 1024 dimensions; a quarter of it above
RQ_BITS = 4
NPROBES = 20
REFINE_CANDIDATES = 100  # passages re-ranked with their full vectors, at least
EXACT_FILTERED_FLOATS = 4_000_000  # a filter keeping fewer: exact scan over just those
FILTERED_PROBE_SHARE = 0.4  # a wider filter: this share of the partitions, NPROBES at least
FILTERED_PROBE_SHARE_WIDE = 0.7  # the same above 1024 dimensions (smaller partitions)
BUILDS_FILE = "index-builds.json"
RECALL_FLOOR = 0.95
RECALL_PROBE_SECONDS = 3600.0
PROBE_QUERIES = 10

VECTOR_INDEX = "vector_idx"
PASSAGE_SCALARS = (("id", "btree"), ("file_id", "btree"), ("path", "btree"),
                   ("kind", "bitmap"))
FILE_SCALARS = (("file_id", "btree"), ("path", "btree"), ("root", "bitmap"))


def vector_index_wanted(rows: int, dims: int) -> bool:
    return rows * dims >= VECTOR_INDEX_MIN_FLOATS


def partitions(rows: int, dims: int) -> int:
    return max(1, rows // (ROWS_PER_PARTITION if dims <= 1024 else ROWS_PER_PARTITION // 4))


def vector_index_config(rows: int, dims: int) -> Any:
    from lancedb.index import IvfRq

    return IvfRq(distance_type="dot", num_partitions=partitions(rows, dims), num_bits=RQ_BITS)


def refine_factor(limit: int) -> int:
    """How many times `limit` to re-rank exactly: REFINE_CANDIDATES passages, or the hits
    asked for when they are more (at 4096 dimensions each re-ranked passage is a random read
    of 16 KB: some 0.1 ms here)."""
    return max(1, -(-REFINE_CANDIDATES // max(1, limit)))


def filtered_nprobes(partitions: int, dims: int) -> int:
    """Partitions searched for a filtered query: its nearest kept passages need not lie in the
    query's nearest NPROBES partitions (bench/scale.py's folder filter of 2% found 0.73 to 0.92
    of them there), so a wider share; all of them when that returns too few. Wide vectors have
    partitions of a quarter the rows, each cheap to search: a larger share of them (at 100k x
    4096, 40% of them gave a 2% folder recall@10 0.94, 70% gave 0.99, both within 20 ms)."""
    share = FILTERED_PROBE_SHARE if dims <= 1024 else FILTERED_PROBE_SHARE_WIDE
    return min(partitions, max(NPROBES, math.ceil(partitions * share)))


def exact_filter(filtered_rows: int, dims: int) -> bool:
    """Whether a filter keeping this many passages is scanned exactly (all it keeps)."""
    return filtered_rows * dims <= EXACT_FILTERED_FLOATS


def _scalar_config(kind: str) -> Any:
    from lancedb.index import Bitmap, BTree

    return BTree() if kind == "btree" else Bitmap()


class IndexBook:
    """index-builds.json: per table, the rows its vector index was trained on."""

    def __init__(self, db_dir: Path | None = None, *, docs: Any = None):
        """Beside the tables of a local database, or among a remote one's docs (remote_dir)."""
        self.path = db_dir / BUILDS_FILE if db_dir is not None else None
        self.docs = docs

    def read(self) -> dict[str, Any]:
        try:
            text = (self.path.read_text(encoding="utf-8") if self.path is not None
                    else self.docs.read(BUILDS_FILE))
            data = json.loads(text) if text else {}
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def note(self, table: str, **entry: Any) -> None:
        data = self.read()
        data[table] = {**data.get(table, {}), **entry}
        text = json.dumps(data, indent=2)
        if self.path is not None:
            write_atomic(self.path, text, fsync=False)
        else:
            self.docs.write(BUILDS_FILE, text)


def _names(table: Any) -> set[str]:
    return {getattr(i, "name", "") for i in table.list_indices()}


def ensure_scalar_indexes(table: Any, columns: tuple[tuple[str, str], ...]) -> list[str]:
    """Build the missing scalar indexes of a table that is large enough; their names."""
    if table.count_rows() < SCALAR_INDEX_MIN_ROWS:
        return []
    have = _names(table)
    built = []
    for column, kind in columns:
        name = f"{column}_idx"
        if name not in have:
            table.create_index(column, config=_scalar_config(kind), name=name)
            built.append(name)
    if built:
        log.info("built scalar indexes %s on %s", ", ".join(built), table.name)
    return built


def vector_index_due(table: Any, dims: int, book: IndexBook) -> str | None:
    """Whether the table calls for a vector index to be built now: "built" (none yet),
    "rebuilt" (grown a few-fold, or too many deltas) or None."""
    rows = table.count_rows()
    if not vector_index_wanted(rows, dims):
        return None
    trained = book.read().get(table.name, {}).get("rows")
    if VECTOR_INDEX in _names(table):
        stats = table.index_stats(VECTOR_INDEX)
        if not trained:  # built before the book was kept (or it was lost): from now on
            trained = max(1, stats.num_indexed_rows)
            book.note(table.name, rows=trained, type=stats.index_type)
        recall = book.read().get(table.name, {}).get("recall")
        if (rows < trained * GROWTH_REBUILD and stats.num_indices <= MAX_DELTAS
                and (recall is None or recall >= RECALL_FLOOR)):
            return None
        return "rebuilt"
    return "built"


def build_vector_index(table: Any, dims: int, book: IndexBook, done: str = "built") -> None:
    """Train the vector index over every row now in the table (replacing any), and book it.
    Searches go on meanwhile, over the old index (or the exact scan) until it is committed."""
    rows = table.count_rows()
    config = vector_index_config(rows, dims)
    log.info("%s the vector index of %s: %s over %d rows", done, table.name,
             type(config).__name__, rows)
    table.create_index("vector", config=config, name=VECTOR_INDEX, replace=True)
    book.note(table.name, rows=rows, type=type(config).__name__, recall=None, probed_at=None)


def probe_due(table: Any, book: IndexBook, now: float) -> bool:
    entry = book.read().get(table.name, {})
    return (VECTOR_INDEX in _names(table)
            and now - float(entry.get("probed_at") or 0) >= RECALL_PROBE_SECONDS)


def probe_recall(table: Any, book: IndexBook, now: float, k: int = 10,
                 limit: int = 50) -> float:
    """recall@k of the index as searched (NPROBES, refine_factor; `limit` hits, the first k
    counted, as search asks for a pool of at least 50) against an exact scan, for
    PROBE_QUERIES stored vectors spread over the table; booked with the time."""
    import numpy as np

    rows = table.count_rows()
    step = max(1, rows // PROBE_QUERIES)
    offsets = list(range(step // 2, rows, step))[:PROBE_QUERIES]
    picked = table.take_offsets(offsets).select(["vector"]).to_arrow()
    vectors = [np.asarray(v, dtype=np.float32) for v in picked.column("vector").to_pylist()]
    found = []
    for v in vectors:
        base = table.search(v, vector_column_name="vector").distance_type("dot").limit(k)
        exact = {r["id"] for r in
                 base.bypass_vector_index().select(["id", "_distance"]).to_list()}
        ann = table.search(v, vector_column_name="vector").distance_type("dot").limit(limit)
        ann = ann.nprobes(NPROBES).refine_factor(refine_factor(limit))
        got = {r["id"] for r in ann.select(["id", "_distance"]).to_list()[:k]}
        found.append(len(exact & got) / max(1, len(exact)))
    recall = round(sum(found) / max(1, len(found)), 4)
    book.note(table.name, recall=recall, probed_at=now)
    log.info("recall@%d of the vector index of %s: %.3f (%d probes)", k, table.name, recall,
             len(found))
    return recall


def ensure_vector_index(table: Any, dims: int, book: IndexBook) -> str | None:
    """Build (or build again) the vector index when the table calls for one; what was done:
    "built", "rebuilt" or None."""
    done = vector_index_due(table, dims, book)
    if done:
        build_vector_index(table, dims, book, done)
    return done


def has_vector_index(table: Any) -> bool:
    return VECTOR_INDEX in _names(table)
