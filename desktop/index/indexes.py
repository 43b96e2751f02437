"""Which indexes a model's tables carry, decided by the writer from their size.

- **Vectors.** Below VECTOR_INDEX_MIN_FLOATS (rows x dimensions) search is an exact scan: one
  pass over the vectors, fast at that size and never wrong. Above it an IVF index with the dot
  metric (the store's), searched with NPROBES partitions and re-ranked exactly over REFINE times
  the hits asked for: IVF_PQ for up to 1024 dimensions, IVF_RQ (RaBitQ) for the 4096 of the 7B
  embedders (../shared/SCALE.md: a metric other than the index's falls back to a scan). New
  rows are folded in by optimize() as delta segments, and searched exactly until then; the
  index is built again when the table has grown GROWTH_REBUILD-fold since it was trained,
  holds more than MAX_DELTAS segments, or its measured recall has dropped under RECALL_FLOOR:
  at most every RECALL_PROBE_SECONDS the writer searches PROBE_QUERIES stored vectors both
  through the index and exactly, and books the recall@10.
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
from pathlib import Path
from typing import Any

from desktop.atomic import write_atomic

log = logging.getLogger(__name__)

VECTOR_INDEX_MIN_FLOATS = 16_000_000  # ~42k x 384, ~4k x 4096 (64 MB of vectors; bench/scale.py)
SCALAR_INDEX_MIN_ROWS = 5_000
GROWTH_REBUILD = 2.0
MAX_DELTAS = 8
ROWS_PER_PARTITION = 4096
NPROBES = 20
REFINE = 10
EXACT_FILTERED_ROWS = 50_000  # a filter keeping fewer passages: exact scan over just those
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


def vector_index_config(rows: int, dims: int) -> Any:
    from lancedb.index import IvfPq, IvfRq

    partitions = max(1, rows // ROWS_PER_PARTITION)
    if dims > 1024:
        return IvfRq(distance_type="dot", num_partitions=partitions)
    return IvfPq(distance_type="dot", num_partitions=partitions,
                 num_sub_vectors=max(1, dims // 8))


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
                 refine: int | None = None, nprobes: int | None = None) -> float:
    """recall@k of the index as searched (NPROBES, REFINE) against an exact scan, for
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
        ann = table.search(v, vector_column_name="vector").distance_type("dot").limit(k)
        ann = ann.nprobes(nprobes or NPROBES).refine_factor(refine or REFINE)
        got = {r["id"] for r in ann.select(["id", "_distance"]).to_list()}
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
