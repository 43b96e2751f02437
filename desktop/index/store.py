"""The LanceDB store: one pair of tables (files, passages) per embedding model.

Vectors of different models or dimensions never share a table: each model gets an index key
(name, quantisation, family, dimensions) and its own `files_<key>` and `chunks_<key>` tables.
The files table makes re-indexing incremental and is the source of truth for what is indexed:
a passage row counts only while its file row carries the same content hash, so a crash between
two writes can leave orphans but never a lie; `purge_orphans` removes them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from desktop.index import indexes
from desktop.index.chunking import Chunk

log = logging.getLogger(__name__)

KEEP_VERSIONS = timedelta(minutes=1)
NOTHING = "false"  # a filter no passage passes
_DELETE_BATCH = 1000  # (file, hash) terms per delete filter
_IN_BATCH = 500  # values per `IN (...)` lookup

FILE_SCHEMA = pa.schema([
    ("file_id", pa.string()),
    ("path", pa.string()),
    ("root", pa.string()),
    ("kind", pa.string()),
    ("size", pa.int64()),
    ("mtime_ns", pa.int64()),
    ("hash", pa.string()),
    ("status", pa.string()),  # ok | skipped | failed
    ("reason", pa.string()),
    ("n_chunks", pa.int32()),
    ("n_tokens", pa.int64()),
    ("sig", pa.string()),  # chunking settings the passages were made with
    ("indexed_at", pa.float64()),
])


# The lines that OCR read on a page (a scan in a PDF, an image), with their place on it: what
# marks a passage as read by OCR and lets the preview highlight it on the page. By content
# hash, like the passages: copies share them, and a row no file's hash names is an orphan.
OCR_LOOK_S = 5.0  # seconds a search trusts that there is no OCR table yet
OCR_SCHEMA = pa.schema([
    ("hash", pa.string()),
    ("page", pa.int32()),  # as the passages have it; 0 for a file of one image
    ("lines", pa.string()),  # JSON: [[start, end, x0, y0, x1, y1], ...], boxes as fractions
])


def ocr_rows(hash_: str, sections: Iterable[Any]) -> list[dict[str, Any]]:
    """OCR_SCHEMA rows for a file version's sections that OCR read (Section.ocr)."""
    return [{"hash": hash_, "page": s.page or 0,
             "lines": json.dumps([[ln.start, ln.end, *(round(v, 5) for v in ln.box)]
                                  for ln in s.ocr], separators=(",", ":"))}
            for s in sections if s.ocr is not None]


def chunk_schema(dims: int) -> pa.Schema:
    return pa.schema([
        ("id", pa.string()),
        ("file_id", pa.string()),
        ("hash", pa.string()),
        ("path", pa.string()),
        ("kind", pa.string()),
        ("ordinal", pa.int32()),
        ("page", pa.int32()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("line_start", pa.int32()),
        ("line_end", pa.int32()),
        ("n_tokens", pa.int32()),
        ("text", pa.string()),
        ("vector", pa.list_(pa.float32(), dims)),
    ])


def passage_rows(file_id: str, hash_: str, path: str, kind: str, chunks: Sequence[Chunk] = (),
                 vectors: Sequence[Any] = (), reused: Sequence[dict[str, Any]] = ()
                 ) -> list[dict[str, Any]]:
    """The rows (chunk_schema) of one version of one file: fresh chunks with their vectors,
    and stored rows of the same content under another path (a moved, renamed or copied file),
    taken over for this file. The id names the version, so a new version's rows never replace
    the old ones before its file row points at them."""
    def row(ordinal: int) -> dict[str, Any]:
        return {"id": f"{file_id}:{hash_[:12]}:{ordinal}", "file_id": file_id, "hash": hash_,
                "path": path, "kind": kind}

    rows = [{**r, **row(r["ordinal"])} for r in reused]
    rows += [{**row(c.ordinal), "ordinal": c.ordinal, "page": c.page, "start": c.start,
              "end": c.end, "line_start": c.line_start, "line_end": c.line_end,
              "n_tokens": len(c.tokens), "text": c.text, "vector": v}
             for c, v in zip(chunks, vectors, strict=True)]
    return rows


def file_id_for(path: str) -> str:
    """A stable id that is safe to put in a filter expression, whatever the path holds."""
    return hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


INDEX_CACHE_BYTES = 1 << 30  # index pages kept in memory, all tables of the process together
METADATA_CACHE_BYTES = 256 << 20
_session: Any = None


def shared_session() -> Any:
    """One LanceDB session for every table this process opens: its caches are bounded once
    for all of them (LanceDB's default is 6 GiB of index and 1 GiB of metadata cache per
    table), beside a model that may need most of the memory."""
    global _session
    if _session is None:
        _session = lancedb.Session(index_cache_size_bytes=INDEX_CACHE_BYTES,
                                   metadata_cache_size_bytes=METADATA_CACHE_BYTES)
    return _session


def _in_lists(values: Sequence[str]) -> Iterable[str]:
    """The values as the insides of `IN (...)` lists of at most _IN_BATCH each."""
    for i in range(0, len(values), _IN_BATCH):
        yield ", ".join(sql_str(x) for x in values[i:i + _IN_BATCH])


@dataclass
class FileRow:
    file_id: str
    path: str
    root: str
    kind: str
    size: int
    mtime_ns: int
    hash: str
    status: str
    reason: str
    n_chunks: int
    n_tokens: int
    sig: str
    indexed_at: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRow:
        return cls(**{k: d[k] for k in FILE_SCHEMA.names})

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in FILE_SCHEMA.names}


# file_rows() builds rows positionally, in the schema's order
assert [f.name for f in fields(FileRow)] == FILE_SCHEMA.names


class Store:
    """One model's index inside a data dir."""

    def __init__(self, db_dir: Path | str, key: str, dims: int):
        """db_dir: the database folder, or its URI on object storage (remote_dir)."""
        self.key = key
        self.dims = dims
        if isinstance(db_dir, Path):
            db_dir.mkdir(parents=True, exist_ok=True)
        self.db_dir = db_dir
        # Every read checks for a newer version: a long-lived reader (a window, a second
        # process) must see what the writer committed, not the version it first read.
        self.session = shared_session()
        self.db = lancedb.connect(str(db_dir), read_consistency_interval=timedelta(0),
                                  session=self.session)
        existing = set(self._table_names())
        self.files = self._open_or_create(f"files_{key}", FILE_SCHEMA, existing)
        self.chunks = self._open_or_create(f"chunks_{key}", chunk_schema(dims), existing)
        self._ocr: Any | None = None  # the table of OCR'd lines, once there is one
        self._ocr_looked = -OCR_LOOK_S  # when the tables were last listed for it (monotonic)
        self._has_fts = False  # known to have the full-text index (the writer builds it)
        # (when asked, the vector index's partitions: 0 without one)
        self._vector_index_at: tuple[float, int] | None = None
        self._counts: dict[tuple[int, str], int] = {}  # (table version, filter) -> passages
        # file_id -> hash of the files that may be shown, as of a version of the files table
        self._valid: tuple[int, dict[str, str]] | None = None
        self._valid_read_at = -1e9
        width = self.chunks.schema.field("vector").type.list_size
        if width != dims:
            raise ValueError(f"index {key} holds {width}-dim vectors, model gives {dims}")

    @functools.cached_property
    def index_book(self) -> indexes.IndexBook:
        if isinstance(self.db_dir, Path):
            return indexes.IndexBook(self.db_dir)
        from desktop.index.remote_dir import RemoteDocs

        return indexes.IndexBook(docs=RemoteDocs(self.db))

    def _table_names(self) -> list[str]:
        res = self.db.list_tables()
        return list(getattr(res, "tables", res))

    def _open_or_create(self, name: str, schema: pa.Schema, existing: set[str]) -> Any:
        if name in existing:
            try:
                return self.db.open_table(name)
            except (ValueError, OSError):
                # Listed but not openable: a creation killed before its first commit leaves a
                # folder with no version in it. Nothing was ever stored there: create it.
                if not self._never_committed(name):
                    raise
                log.warning("table %s was never finished (a crash while creating it); "
                            "creating it again", name)
        try:
            return self.db.create_table(name, schema=schema)
        except (ValueError, OSError):  # another process created it first
            return self.db.open_table(name)

    def _never_committed(self, name: str) -> bool:
        if not isinstance(self.db_dir, Path):  # object storage: creation is one conditional put
            return False
        versions = self.db_dir / f"{name}.lance" / "_versions"
        try:
            return not any(n.endswith(".manifest") for n in os.listdir(versions))
        except FileNotFoundError:
            return True
        except OSError:
            return False

    # -- reading ---------------------------------------------------------------------------

    def file_rows(self, root: str | None = None) -> dict[str, FileRow]:
        """All file rows (of one folder, if given), by path."""
        query = self.files.search()
        if root is not None:
            query = query.where(f"root = {sql_str(root)}")
        tbl = query.limit(None).to_arrow() if self.files.count_rows() else None
        if tbl is None:
            return {}
        # column by column, and rows built positionally: three times faster than to_pylist()
        # and dicts (about 0.3 s for 50,000 files)
        columns = [tbl.column(name).to_pylist() for name in FILE_SCHEMA.names]
        paths = columns[FILE_SCHEMA.names.index("path")]
        return dict(zip(paths, (FileRow(*values) for values in zip(*columns, strict=True)),
                        strict=True))

    def folder_counts(self) -> dict[str, dict[str, int]]:
        """Per watched folder: files indexed, failed and skipped, and passages; only the three
        columns are read and summed in Arrow, so it is cheap enough to ask during a run."""
        if not self.files.count_rows():
            return {}
        tbl = (self.files.search().select(["root", "status", "n_chunks"]).limit(None)
               .to_arrow())
        grouped = tbl.group_by(["root", "status"]).aggregate(
            [("n_chunks", "sum"), ("n_chunks", "count")])
        out: dict[str, dict[str, int]] = {}
        for r in grouped.to_pylist():
            c = out.setdefault(r["root"], {"files_indexed": 0, "files_failed": 0,
                                           "files_skipped": 0, "passages": 0})
            n = int(r["n_chunks_count"])
            if r["status"] == "ok":
                c["files_indexed"] += n
                c["passages"] += int(r["n_chunks_sum"] or 0)
            elif r["status"] == "skipped":
                c["files_skipped"] += n
            else:
                c["files_failed"] += n
        return out

    def count_chunks(self, where: str | None = None) -> int:
        """Passages in all, or those a filter keeps: counted once per version of the table (a
        search with a filter counts first, and a person typing query after query in one folder
        asks again and again)."""
        if not where:
            return self.chunks.count_rows()
        key = (self.chunks.version, where)
        n = self._counts.get(key)
        if n is None:
            n = self.chunks.count_rows(where)
            if len(self._counts) >= 256:
                self._counts.clear()
            self._counts[key] = n
        return n

    def where_clause(self, kinds: Sequence[str] = (), folder: str | None = None,
                     since: float | None = None, until: float | None = None) -> str | None:
        """A passage filter for search, applied by LanceDB before ranking (so a narrow filter
        still returns every hit there is): file kinds, a folder (files under it), and when the
        file was modified, from the files table (since <= mtime < until, epoch seconds).
        None: no filter. NOTHING: no file matches."""
        parts = []
        if kinds:
            parts.append(f"kind IN ({', '.join(sql_str(k) for k in kinds)})")
        prefix = None
        if folder:
            prefix = folder if folder.endswith(os.sep) else folder + os.sep
            # the paths under it, as a range: the path's BTREE answers it (starts_with()
            # scans every path, 17 ms at 100k passages against 1.3)
            above = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            parts.append(f"path >= {sql_str(prefix)} AND path < {sql_str(above)}")
        if since is not None or until is not None:
            # the files the other filters leave, and which of them were modified in the span
            tbl = (self.files.search().where(" AND ".join(["status = 'ok'", *parts]))
                   .select(["file_id", "mtime_ns"]).limit(None).to_arrow()
                   if self.files.count_rows() else None)
            if tbl is None or not tbl.num_rows:
                return NOTHING
            mtime = tbl.column("mtime_ns")
            keep = pc.and_(pc.greater_equal(mtime, int(since * 1e9)) if since is not None
                           else pa.scalar(True),
                           pc.less(mtime, int(until * 1e9)) if until is not None
                           else pa.scalar(True))
            ids = tbl.column("file_id")
            inside = ids.filter(keep).to_pylist()
            if not inside:
                return NOTHING
            # the shorter list: those that match, or those (of the rest) that do not
            if len(inside) * 2 <= tbl.num_rows:
                parts.append(f"file_id IN ({', '.join(sql_str(x) for x in inside)})")
            elif len(inside) < tbl.num_rows:
                outside = ids.filter(pc.invert(keep)).to_pylist()
                parts.append(f"file_id NOT IN ({', '.join(sql_str(x) for x in outside)})")
        return " AND ".join(parts) or None

    def valid_hashes(self, file_ids: Iterable[str]) -> dict[str, str]:
        """file_id -> hash of the files whose passages may be shown, as of the files table's
        newest version (every search asks, for each list it ranks).

        The answer for the whole table is kept per version of the files table: while that
        version is the newest, a lookup costs a version check and a dict. A new version is
        read in full (some 45 ms at 50,000 files) at most every VALID_REREAD_SECONDS; between
        two such reads (a writer committing batch after batch) only the ids asked for are
        looked up, in the table."""
        ids = sorted(set(file_ids))
        if not ids:
            return {}
        version = self.files.version
        if self._valid is not None and self._valid[0] == version:
            known = self._valid[1]
            return {i: known[i] for i in ids if i in known}
        now = time.monotonic()
        if (now - self._valid_read_at >= VALID_REREAD_SECONDS
                and self.files.count_rows() <= VALID_CACHE_MAX_FILES):
            self._valid_read_at = now
            rows = (self.files.search().where("status = 'ok'").select(["file_id", "hash"])
                    .limit(None).to_arrow())
            known = dict(zip(rows.column("file_id").to_pylist(),
                             rows.column("hash").to_pylist(), strict=True))
            self._valid = (version, known)
            return {i: known[i] for i in ids if i in known}
        out: dict[str, str] = {}
        for part in _in_lists(ids):
            rows = (self.files.search().where(f"file_id IN ({part}) AND status = 'ok'")
                    .select(["file_id", "hash"]).limit(None).to_arrow().to_pylist())
            out.update({r["file_id"]: r["hash"] for r in rows})
        return out

    def paths_with_rows(self, paths: Iterable[str]) -> set[str]:
        """Which of these paths have a file row (of any status)."""
        ids = sorted({file_id_for(p) for p in paths})
        out: set[str] = set()
        for part in _in_lists(ids):
            tbl = (self.files.search().where(f"file_id IN ({part})").select(["path"])
                   .limit(None).to_arrow())
            out.update(tbl.column("path").to_pylist())
        return out

    def passages_of(self, file_id: str, hash_: str) -> list[dict[str, Any]]:
        """A file version's passages with their vectors (to reuse them for a moved file)."""
        return (self.chunks.search()
                .where(f"file_id = {sql_str(file_id)} AND hash = {sql_str(hash_)}")
                .limit(None).to_arrow().to_pylist())

    # -- writing (one writer per data dir) ---------------------------------------------------

    def write(self, chunk_rows: Sequence[dict[str, Any]] | pa.Table,
              file_rows: Sequence[FileRow], ocr: Sequence[dict[str, Any]] = ()) -> None:
        """Add passages (and what OCR read, `ocr_rows`), then point their files at them, then
        drop what they replace.

        This order is what makes a kill at any moment safe: until the file row changes, the new
        passages are orphans; after it, the old ones are.
        """
        if ocr:
            self._ocr_table(create=True).add(pa.Table.from_pylist(list(ocr), schema=OCR_SCHEMA))
        if len(chunk_rows):
            self.chunks.add(chunk_rows)
            self.ensure_fts()  # keyword search is fast from the first batch on
        if file_rows:
            self._upsert_files(file_rows)
            self._delete_pairs([(r.file_id, r.hash) for r in file_rows], "!=")

    def _ocr_table(self, create: bool = False) -> Any | None:
        """The table of OCR'd lines; None while nothing was ever read by OCR (made at the
        first write that needs it)."""
        if self._ocr is None and (create or time.monotonic() - self._ocr_looked > OCR_LOOK_S):
            # (a search of a library without scans lists the tables once in a while, not at
            # every query: a listing is a request on object storage)
            self._ocr_looked = time.monotonic()
            name = f"ocr_{self.key}"
            if name in self._table_names():
                self._ocr = self._open_or_create(name, OCR_SCHEMA, {name})
            elif create:
                self._ocr = self._open_or_create(name, OCR_SCHEMA, set())
        return self._ocr

    def ocr_lines(self, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], list[Any]]:
        """The lines OCR read on these (hash, page), [start, end, x0, y0, x1, y1] each, for
        those that were read by OCR (page 0: a file of one image)."""
        pairs = set(pairs)
        table = self._ocr_table() if pairs else None
        if table is None:
            return {}
        hashes = sorted({h for h, _ in pairs})
        found: dict[tuple[str, int], list[Any]] = {}
        for part in _in_lists(hashes):
            got = table.search().where(f"hash IN ({part})").limit(None).to_arrow()
            for h, page, lines in zip(got.column("hash").to_pylist(),
                                      got.column("page").to_pylist(),
                                      got.column("lines").to_pylist(), strict=True):
                if (h, page) in pairs and (h, page) not in found:
                    try:
                        found[(h, page)] = json.loads(lines)
                    except ValueError:
                        found[(h, page)] = []
        return found

    def _upsert_files(self, rows: Sequence[FileRow]) -> None:
        data = pa.Table.from_pylist([r.to_dict() for r in rows], schema=FILE_SCHEMA)
        (self.files.merge_insert("file_id").when_matched_update_all()
         .when_not_matched_insert_all().execute(data))

    def remove_files(self, file_ids: Sequence[str]) -> None:
        """Forget files that are gone: passages first would leave a file row with none."""
        for part in _in_lists(file_ids):
            self.files.delete(f"file_id IN ({part})")
            self._delete_chunks(f"file_id IN ({part})")

    def _delete_chunks(self, where: str) -> None:
        if where:
            self.chunks.delete(where)

    def _delete_pairs(self, pairs: Sequence[tuple[str, str]], op: str) -> None:
        """Delete passages of (file_id, hash) pairs: hash `op` ("=" or "!=") the given one.

        In slices: one filter of tens of thousands of OR terms overflows the stack of the
        SQL parser and kills the process (a segfault, not an exception).
        """
        for i in range(0, len(pairs), _DELETE_BATCH):
            self._delete_chunks(" OR ".join(
                f"(file_id = {sql_str(f)} AND hash {op} {sql_str(h)})"
                for f, h in pairs[i:i + _DELETE_BATCH]))

    def purge_orphans(self) -> int:
        """Delete passages whose file row is missing or carries another hash; forget files
        whose row does not match their passages (none, some, or some twice), so that the next
        scan indexes them again. Returns how many versions and files were cleaned up."""
        if not self.files.count_rows() and not self.chunks.count_rows():
            return 0
        valid: dict[str, str] = {}
        claimed: dict[str, int] = {}
        if self.files.count_rows():  # one scan of the files table, not a query per 500 ids
            ok = (self.files.search().where("status = 'ok'")
                  .select(["file_id", "hash", "n_chunks"]).limit(None).to_arrow())
            ids = ok.column("file_id").to_pylist()
            valid = dict(zip(ids, ok.column("hash").to_pylist(), strict=True))
            claimed = dict(zip(ids, ok.column("n_chunks").to_pylist(), strict=True))
        groups: list[tuple[str, str, int]] = []  # (file_id, hash, passages), counted in Arrow
        if self.chunks.count_rows():
            have = self.chunks.search().select(["file_id", "hash"]).limit(None).to_arrow()
            counted = have.group_by(["file_id", "hash"]).aggregate([("file_id", "count")])
            groups = list(zip(counted.column("file_id").to_pylist(),
                              counted.column("hash").to_pylist(),
                              counted.column("file_id_count").to_pylist(), strict=True))
        ocr = self._ocr_table()
        if ocr is not None and ocr.count_rows():  # lines of file versions no longer indexed
            have = set(ocr.search().select(["hash"]).limit(None).to_arrow()
                       .column("hash").to_pylist())
            stale = sorted(have - set(valid.values()))
            for part in _in_lists(stale):
                ocr.delete(f"hash IN ({part})")
        bad = {(f, h) for f, h, _ in groups if valid.get(f) != h}
        if bad:
            log.info("removing passages of %d unfinished or replaced files", len(bad))
            self._delete_pairs(sorted(bad), "=")
        held = Counter({f: n for f, h, n in groups if valid.get(f) == h})
        broken = sorted(f for f, n in claimed.items() if held[f] != n)
        if broken:
            log.warning("%d files do not have the passages their row says: indexing them "
                        "again", len(broken))
            self.remove_files(broken)
        return len(bad) + len(broken)

    def optimize(self) -> None:
        """Fold new rows into the full-text index, compact fragments, drop old versions.

        Versions younger than a minute are kept: a search in another process may still be
        reading one. Older ones go, so the store does not grow with every write.
        """
        for _ in self.optimize_steps():
            pass

    def optimize_steps(self) -> Iterator[str]:
        """optimize(), saying before each step what it is about to do (for the progress the
        faces show: building a vector index over a million passages takes minutes)."""
        yield "Updating the keyword index…"
        self.ensure_fts()
        indexes.ensure_scalar_indexes(self.chunks, indexes.PASSAGE_SCALARS)
        indexes.ensure_scalar_indexes(self.files, indexes.FILE_SCALARS)
        due = indexes.vector_index_due(self.chunks, self.dims, self.index_book)
        if due:
            rows = self.chunks.count_rows()
            yield (f"{'Building' if due == 'built' else 'Rebuilding'} the vector index of "
                   f"{rows:,} passages (search goes on meanwhile)…")
            indexes.build_vector_index(self.chunks, self.dims, self.index_book, due)
            self._vector_index_at = None  # look again
        yield "Compacting the index…"
        for table in (self.chunks, self.files, self._ocr_table()):
            if table is not None:
                table.optimize(cleanup_older_than=KEEP_VERSIONS)
        now = time.time()
        # (not on object storage: each exact scan would read every vector from the bucket)
        if isinstance(self.db_dir, Path) and indexes.probe_due(self.chunks, self.index_book,
                                                               now):
            yield "Measuring the vector index's recall…"
            recall = indexes.probe_recall(self.chunks, self.index_book, now)
            if recall < indexes.RECALL_FLOOR:  # folded-in rows drifted from its partitions
                yield (f"Rebuilding the vector index of {self.chunks.count_rows():,} passages "
                       f"(its recall fell to {recall:.2f})…")
                indexes.build_vector_index(self.chunks, self.dims, self.index_book, "rebuilt")
                self._vector_index_at = None

    def ensure_indexes(self) -> None:
        """The scalar and vector indexes the tables' sizes call for (desktop/index/indexes.py);
        the writer's job, like the full-text index."""
        indexes.ensure_scalar_indexes(self.chunks, indexes.PASSAGE_SCALARS)
        indexes.ensure_scalar_indexes(self.files, indexes.FILE_SCALARS)
        if indexes.ensure_vector_index(self.chunks, self.dims, self.index_book):
            self._vector_index_at = None  # look again

    def _vector_partitions(self) -> int:
        """The vector index's partitions, 0 without one (another process may build one: asked
        again every few seconds, not at every query)."""
        now = time.monotonic()
        if self._vector_index_at is None or now - self._vector_index_at[0] > 5.0:
            parts = 0
            if indexes.has_vector_index(self.chunks):
                trained = (self.index_book.read().get(self.chunks.name, {}).get("rows")
                           or self.chunks.count_rows())
                parts = indexes.partitions(int(trained), self.dims)
            self._vector_index_at = (now, parts)
        return self._vector_index_at[1]

    def ensure_fts(self) -> None:
        """Build the full-text index if there is none (the writer's job: call it under the
        writer lock). Built once the first passages are in: an index made on an empty table
        covers nothing until the next optimize."""
        from lancedb.index import FTS

        if self._has_fts:
            return
        names = {getattr(i, "name", "") for i in self.chunks.list_indices()}
        if "text_idx" not in names and self.chunks.count_rows():
            self.chunks.create_index("text", config=FTS(with_position=False), name="text_idx")
            names.add("text_idx")
        self._has_fts = "text_idx" in names

    # -- search ----------------------------------------------------------------------------

    def vector_search(self, vector: np.ndarray, limit: int, where: str | None = None,
                      filtered_rows: int | None = None) -> list[dict[str, Any]]:
        """The `limit` passages nearest the vector (dot product), of those `where` keeps.

        Exact below the size where a vector index pays (indexes.py); above it the index,
        re-ranked exactly, except for a filter that keeps few passages (`filtered_rows`, when
        the caller has counted them): those are scanned exactly, all of them."""
        partitions = self._vector_partitions()
        every = False
        while True:
            q = self.chunks.search(vector.astype(np.float32), vector_column_name="vector")
            q = q.distance_type("dot").limit(limit)
            if partitions:
                if where and filtered_rows is not None and indexes.exact_filter(filtered_rows,
                                                                                self.dims):
                    q = q.bypass_vector_index()
                else:
                    probes = (partitions if every else
                              indexes.filtered_nprobes(partitions, self.dims) if where
                              else indexes.NPROBES)
                    q = q.nprobes(probes).refine_factor(indexes.refine_factor(limit))
            if where:
                q = q.where(where, prefilter=True)
            rows = q.select([*_RESULT_COLUMNS, "_distance"]).to_arrow().to_pylist()
            # a filter whose passages lie beyond the partitions searched: all of them, so it
            # never returns fewer hits than it keeps
            if (every or not partitions or not where or filtered_rows is None
                    or len(rows) >= min(limit, filtered_rows)):
                break
            every = True
        for r in rows:
            r["score"] = 1.0 - float(r.pop("_distance"))
        return rows

    def keyword_search(self, text: str, limit: int, where: str | None = None
                       ) -> list[dict[str, Any]]:
        """BM25 over the full-text index. A reader never builds it (only the writer does, in
        write() and optimize()); rows not yet folded in, or a table with no index yet, are
        matched by LanceDB's flat search, so nothing written is missed, only slower."""
        if not self.chunks.count_rows():
            return []
        q = self.chunks.search(text, query_type="fts", fts_columns="text").limit(limit)
        if where:
            q = q.where(where, prefilter=True)
        rows = q.select([*_RESULT_COLUMNS, "_score"]).to_arrow().to_pylist()
        for r in rows:
            r["score"] = float(r.pop("_score"))
        return rows


VALID_REREAD_SECONDS = 2.0
VALID_CACHE_MAX_FILES = 250_000  # (a dict of this many ids and hashes: some 50 MB)
_RESULT_COLUMNS = ["id", "file_id", "hash", "path", "kind", "ordinal", "page", "start", "end",
                   "line_start", "line_end", "text"]
