"""Bring a model's index in line with folders on disk, as a generator of progress.

Reading, hashing, extracting and chunking run in a producer thread while the calling thread
embeds and writes: llama.cpp releases the GIL during decode, so the Python side work overlaps
the model's. Unchanged files (same size and mtime) cost one stat; a touched file whose content
hash is unchanged costs one read and no embedding. A file that fails is recorded with its
reason and indexing goes on; nothing already indexed is lost.

A file whose content (and passage settings) match a file already indexed reuses that file's
passages and vectors: a renamed or moved file, a whole moved folder, or a copy costs no
embedding. Files that vanished are forgotten only after the new ones were matched against them.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np
import pyarrow as pa

from desktop import extract
from desktop.extract.model import GAVE_UP
from desktop.index.chunking import Chunk, ChunkSettings, chunk_text
from desktop.index.scan import (
    FileStat,
    ScanProblem,
    excluded_path,
    is_under,
    scan_folder,
    scan_path,
    stat_file,
)
from desktop.index.store import (
    FileRow,
    Store,
    chunk_schema,
    file_id_for,
    ocr_rows,
    passage_rows,
)
from desktop.models.embedder import Cancelled, Embedder

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 256 * 1024 * 1024
EXTRACT_VERSION = 1  # how every kind is read: a change reads every file again
# what changed since in how one kind is read: only files of that kind are read again
KIND_VERSIONS = {"csv": 2, "tsv": 2}  # 2: by rows, each value named by its column
_READ_AHEAD = 64  # files read and cut, waiting for the embedder (bounds the memory they hold)
_BATCH_PASSAGES = 64  # passages gathered before an embed call, while more files are ready
_EMBED_SLICE = 256  # passages an embed call takes at most: progress moves within a large file
_WAIT_TICK = 0.5  # seconds the embedder waits for the reader before saying what it reads
_FLUSH_CHUNKS = 512  # passages buffered before a write (each write is a LanceDB version)
_FLUSH_SECONDS = 10.0  # at most this long between writes; the first come sooner:
_FIRST_FLUSH_SECONDS = 1.0  # 1, 2, 4, 8, then every 10 s: a new folder is searchable at once
_FLUSH_FILES = 2000  # file rows buffered (touched or failed files carry no passages)
_SETTLE_TRIES = 4
_SETTLE_PAUSE = 0.25


class _StillChanging(Exception):
    pass


class Phase(str, Enum):
    """Where a run is. A str: `prog.phase == "indexing"` holds, as it did for the plain string."""

    SCANNING = "scanning"
    INDEXING = "indexing"
    FINISHING = "finishing"
    DONE = "done"
    CANCELLED = "cancelled"

    def __str__(self) -> str:  # "indexing", not "Phase.INDEXING", in f-strings on any Python
        return self.value


@dataclass
class Progress:
    """What the person sees while indexing; emitted often, cheap to copy."""

    phase: Phase
    files_total: int = 0  # files to read this run
    files_done: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    files_pending: int = 0  # still being written: picked up when they settle
    files_reused: int = 0  # moved, renamed or copied: passages reused, nothing embedded
    chunks: int = 0
    tokens: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    elapsed: float = 0.0
    embed_seconds: float = 0.0
    current: str | None = None
    # a large file while its passages are embedded (progress within it), and the file the
    # reader is busy with while the embedder waits for it (a large one being extracted)
    file_passages_done: int = 0
    file_passages_total: int = 0
    reading: str | None = None
    reading_pages: tuple[int, int] | None = None  # OCR of the file being read: (done, total)
    ocr_pages: int = 0  # pages read by OCR this run, and the seconds they took
    ocr_seconds: float = 0.0
    partial_bytes: int = 0  # of the files part-way through, as much as is embedded
    partial_tokens: int = 0
    step: str | None = None  # while finishing: what the writer is doing, in a sentence
    problem: tuple[str, str] | None = None  # (path, reason), reported once
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.phase = Phase(self.phase)  # Progress("scanning") still works

    @property
    def tokens_per_s(self) -> float:
        tokens = self.tokens + self.partial_tokens
        return tokens / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ocr_seconds_per_page(self) -> float | None:
        return self.ocr_seconds / self.ocr_pages if self.ocr_pages else None

    @property
    def eta_s(self) -> float | None:
        done = self.bytes_done + self.partial_bytes
        if self.phase != Phase.INDEXING or self.elapsed <= 0:
            return None
        ocr = 0.0  # the pages of the scan being read, at the pace OCR has kept so far
        if self.reading_pages and self.ocr_seconds_per_page:
            ocr = (self.reading_pages[1] - self.reading_pages[0]) * self.ocr_seconds_per_page
        if not done:
            return ocr or None
        rate = done / self.elapsed
        return max(0.0, (self.bytes_total - done) / rate) + ocr


@dataclass
class _Work:
    stat: FileStat
    root: str
    hash: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    status: str = "ok"
    reason: str = ""
    vanished: bool = False
    unchanged_content: bool = False
    old: FileRow | None = None
    copy_from: FileRow | None = None  # same content already indexed under another path
    deferred: bool = False  # still being written: left for the next pass
    ocr: list[dict[str, Any]] = field(default_factory=list)  # what OCR read (store.ocr_rows)


@dataclass
class _Run:
    """One run's plan and progress."""

    prog: Progress = field(default_factory=lambda: Progress(Phase.SCANNING))
    t0: float = field(default_factory=time.monotonic)
    todo: list[tuple[FileStat, str]] = field(default_factory=list)  # (file, its folder) to read
    gone: list[FileRow] = field(default_factory=list)  # to forget, once the rest is written
    rows: dict[str, FileRow] = field(default_factory=dict)  # the files table, by path
    # Content already indexed, by hash: a moved or copied file reuses its passages. Taken
    # before anything is forgotten, so a file that moved still finds its old self.
    copies: dict[str, FileRow] = field(default_factory=dict)

    def progress(self, **changes: Any) -> Progress:
        """A copy of the progress to hand out, with the time taken so far."""
        return replace(self.prog, elapsed=time.monotonic() - self.t0, **changes)

    def enter(self, phase: Phase, **changes: Any) -> Progress:
        self.prog.phase = phase
        return self.progress(**changes)

    def count(self, w: _Work) -> tuple[str, str] | None:
        """Count a file the batch is done with; returns its problem (path, reason), if any."""
        prog = self.prog
        prog.files_done += 1
        prog.bytes_done += w.stat.size
        prog.partial_bytes = prog.partial_tokens = 0
        prog.file_passages_done = prog.file_passages_total = 0
        prog.chunks += len(w.chunks)
        prog.tokens += sum(len(c.tokens) for c in w.chunks)
        prog.files_reused += w.copy_from is not None and not w.chunks
        prog.current = w.stat.path
        if w.deferred:
            prog.files_pending += 1
            return None
        if w.status == "ok":
            return None
        if w.status == "failed":
            prog.files_failed += 1
        else:
            prog.files_skipped += 1
        problem = (w.stat.path, w.reason)
        prog.problems.append(problem)
        return problem


class _Producer:
    """The producer thread: reads, hashes and cuts the files ahead of the embedder.

    Used as a context manager: leaving it stops the thread and waits for it, whatever the
    consumer did (finished, cancelled, raised, or stopped iterating).
    """

    def __init__(self, prepare: Callable[[FileStat, str], _Work],
                 todo: Sequence[tuple[FileStat, str]], cancel: threading.Event):
        self._prepare = prepare
        self._todo = todo
        self._cancel = cancel
        self._stop = threading.Event()
        self._queue: queue.Queue[_Work | None] = queue.Queue(maxsize=_READ_AHEAD)
        self._thread = threading.Thread(target=self._produce, name="semdex-extract", daemon=True)
        self.finished = False  # the last batch has been handed out
        self.current: str | None = None  # the file being read and cut now

    def stopping(self) -> bool:
        """Whether the file being read may be given up (the run cancelled or over)."""
        return self._stop.is_set() or self._cancel.is_set()

    def __enter__(self) -> _Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass

    def batches(self) -> Iterator[list[_Work] | None]:
        """Prepared files, in batches of at least _BATCH_PASSAGES passages or of whatever is
        ready (the embedder never waits for a batch to fill); the last batch, perhaps empty,
        comes with `finished` set. None while the reader is still busy (every _WAIT_TICK):
        the caller can say which file it is reading."""
        pending: list[_Work] = []
        while True:
            try:
                item = self._queue.get(timeout=_WAIT_TICK)
            except queue.Empty:
                if pending:
                    yield pending
                    pending = []
                else:
                    yield None
                continue
            if item is None:
                self.finished = True
                yield pending
                return
            pending.append(item)
            if (sum(len(w.chunks) for w in pending) < _BATCH_PASSAGES
                    and not self._queue.empty()):
                continue
            yield pending
            pending = []

    def _produce(self) -> None:
        try:
            for st, root in self._todo:
                if self._stop.is_set() or self._cancel.is_set():
                    break
                self.current = st.path
                try:
                    work = self._prepare(st, root)
                except Exception as exc:  # a bug must not stall the run: report, go on
                    log.exception("failed to prepare %s", st.path)
                    work = _Work(st, root, status="failed",
                                 reason=f"internal error: {type(exc).__name__}: {exc}")
                self._queue.put(work)
        finally:
            self._queue.put(None)


class _Writes:
    """Rows waiting to be written, and when to write them: each write is a LanceDB version,
    so rows are gathered, but not for long (a new folder should be searchable at once)."""

    def __init__(self, store: Store):
        self.store = store
        self.passages: list[dict[str, Any]] = []
        self.files: list[FileRow] = []
        self.ocr: list[dict[str, Any]] = []
        self.forgotten: list[str] = []  # ids of files that are gone
        self.wrote = False
        self._last = time.monotonic()
        self._every = _FIRST_FLUSH_SECONDS

    def due(self) -> bool:
        return (len(self.passages) >= _FLUSH_CHUNKS
                or len(self.files) + len(self.forgotten) >= _FLUSH_FILES
                or time.monotonic() - self._last > self._every)

    def flush(self) -> None:
        """Write what is buffered: passages, then the file rows that point at them (the order
        Store.write keeps, which makes a kill safe), then forget the files that are gone."""
        self._last = time.monotonic()
        self._every = min(_FLUSH_SECONDS, self._every * 2)
        if self.passages or self.files:
            table = pa.Table.from_pylist(self.passages, schema=chunk_schema(self.store.dims))
            self.store.write(table, self.files, self.ocr)
            self.wrote = True
        if self.forgotten:
            self.store.remove_files(self.forgotten)
            self.wrote = True
        self.passages.clear()
        self.files.clear()
        self.ocr.clear()
        self.forgotten.clear()


class Indexer:
    def __init__(self, store: Store, embedder: Embedder, *, overlap: int | None = None,
                 excludes: Sequence[str] = (),
                 extraction: extract.ExtractSettings | None = None):
        self.store = store
        self.embedder = embedder
        self.extraction = extraction or extract.ExtractSettings()
        chunk = embedder.chunk_tokens
        self.settings = ChunkSettings(chunk, overlap if overlap is not None else chunk // 8)
        self.excludes = tuple(excludes)
        # while a run reads files: whether to give one up, the pages OCR has read of the
        # current one, and of all (pages, seconds)
        self._stopping: Callable[[], bool] | None = None
        self._pages: tuple[str, extract.Pages] | None = None
        self._ocr_done: tuple[int, float] = (0, 0.0)
        # How passages are made: files indexed another way are read again.
        self.passage_version = (f"{embedder.profile.family}/{self.settings.max_tokens}/"
                                f"{self.settings.overlap}/x{EXTRACT_VERSION}")

    @property
    def sig(self) -> str:
        """The passage version under the files table's name for it (`FileRow.sig`)."""
        return self.passage_version

    def version_of(self, kind: str, status: str = "ok") -> str:
        """The version a file of this kind and outcome is indexed at (`FileRow.sig`): the
        passage version, and the extraction settings that change what the file gives, so
        that changing one reads again exactly the files it concerns."""
        version = self.passage_version
        if kind in KIND_VERSIONS:
            version += f"/{kind}{KIND_VERSIONS[kind]}"
        if kind in ("pdf", "image") and (self.extraction.ocr_pdfs if kind == "pdf"
                                         else self.extraction.ocr_images):
            version += "/ocr"
        if status != "ok":  # too large, or too slow, with the limits of then
            version += (f"/{self.extraction.max_text_mb:g}mb"
                        f"/{self.extraction.timeout_s:g}s")
        return version

    def wants(self, item: FileStat) -> bool:
        """Whether a supported file is indexed with these settings: images only when reading
        their text (OCR) is on; otherwise they are as if not supported."""
        return item.kind != "image" or self.extraction.ocr_images

    def _current(self, row: FileRow) -> bool:
        """Whether a file's row is as this indexer would write it (content aside): a file
        that failed is tried again at each scan, unless it failed by taking too long."""
        return (row.sig == self.version_of(row.kind, row.status)
                and (row.status != "failed" or row.reason.startswith(GAVE_UP)))

    # -- planning ----------------------------------------------------------------------------

    def plan(self, roots: Sequence[str], scope: Iterable[str] | None = None,
             library: Sequence[str] | None = None
             ) -> tuple[list[tuple[FileStat, str]], list[FileRow], list[ScanProblem], int,
                        dict[str, FileRow]]:
        """Compare the folders with the files table: what to read, what to forget.

        With a scope (paths a watcher saw change), only files at or under those paths are
        looked at; the rest of the folders is taken as it is. With `library` (every folder
        the person keeps, present or not), a full run also forgets files of any other folder:
        one removed from the library while another model was in use.
        """
        rows = self.store.file_rows()
        todo: list[tuple[FileStat, str]] = []
        problems: list[ScanProblem] = []
        reported: set[ScanProblem] = set()
        seen: set[str] = set()
        unchanged = 0
        looked: list[str] = []  # paths whose whole subtree was looked at
        # A file a watcher named is read even if its size and mtime look unchanged: a rewrite
        # within the file system's clock tick, or one that kept the mtime, shows no other sign.
        named = set(scope) if scope is not None else set()
        for root, item in self._walk(roots, scope, looked):
            if isinstance(item, ScanProblem):
                if item not in reported:  # a folder and a path in it may both be in scope
                    reported.add(item)
                    problems.append(item)
                continue
            if item.path in seen or not self.wants(item):
                continue
            seen.add(item.path)
            row = rows.get(item.path)
            if (row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns
                    and row.kind == item.kind  # (a .csv read as text before it had a reader)
                    and self._current(row) and item.path not in named):
                unchanged += 1
                continue
            todo.append((item, root))
        # A folder that cannot be listed keeps its files' index (it may be back next time); a
        # file that became a broken link or a pipe is gone as far as its old passages go.
        unreadable = {p.path for p in problems if p.folder}
        tops = set(looked)
        gone = [r for p, r in rows.items()
                if p not in seen and _under_any(p, tops) and not _under_any(p, unreadable)]
        if scope is None and library is not None:
            kept = set(library) | tops
            gone += [r for p, r in rows.items() if not _under_any(p, kept)]
        return todo, gone, problems, unchanged, rows

    def _walk(self, roots: Sequence[str], scope: Iterable[str] | None, looked: list[str]
              ) -> Iterator[tuple[str, FileStat | ScanProblem]]:
        if scope is None:
            for root in roots:
                looked.append(root)
                for item in scan_folder(root, self.excludes):
                    yield root, item
            return
        for path in sorted(set(scope)):
            root = next((r for r in roots if is_under(path, r)), None)
            if root is None or excluded_path(path, root, self.excludes):
                continue
            looked.append(path)
            for item in scan_path(path, root, self.excludes):
                yield root, item

    # -- running -----------------------------------------------------------------------------

    def run(self, roots: Sequence[str], cancel: threading.Event | None = None, *,
            scope: Iterable[str] | None = None, optimize: bool = True,
            library: Sequence[str] | None = None) -> Iterator[Progress]:
        """Sync the folders (or just the scope's paths) and yield progress along the way."""
        cancel = cancel or threading.Event()
        run = _Run()
        self._ocr_done = (0, 0.0)
        yield run.progress()
        if scope is None:
            self.store.purge_orphans()  # what a crash left half-written
        yield from self._start(run, roots, scope, library)
        writes = _Writes(self.store)
        yield from self._index(run, writes, cancel)
        if cancel.is_set():
            yield run.enter(Phase.CANCELLED)
            return
        # Only now: every new file has been matched against these by content.
        writes.forgotten.extend(r.file_id for r in run.gone)
        writes.flush()
        yield run.enter(Phase.FINISHING)
        if optimize and writes.wrote:
            for step in self.store.optimize_steps():
                run.prog.step = step
                yield run.progress()
        run.prog.step = None
        run.prog.ocr_pages, run.prog.ocr_seconds = self._ocr_done
        yield run.enter(Phase.DONE, current=None)

    def _start(self, run: _Run, roots: Sequence[str], scope: Iterable[str] | None,
               library: Sequence[str] | None) -> Iterator[Progress]:
        """Plan the run, report what the scan could not read, and count what there is to do."""
        run.todo, run.gone, scan_problems, unchanged, run.rows = self.plan(roots, scope, library)
        prog = run.prog
        bad_files = sum(1 for p in scan_problems if not p.folder)
        prog.files_total = prog.files_done = prog.files_failed = bad_files
        for p in scan_problems:
            prog.problems.append((p.path, p.reason))
            yield run.progress(problem=(p.path, p.reason))
        run.copies = {r.hash: r for r in run.rows.values()
                      if r.status == "ok" and r.sig == self.version_of(r.kind) and r.n_chunks}
        prog.files_removed = len(run.gone)
        prog.files_unchanged = unchanged
        prog.files_total = len(run.todo) + bad_files
        prog.bytes_total = sum(s.size for s, _ in run.todo)
        yield run.enter(Phase.INDEXING)

    def _index(self, run: _Run, writes: _Writes, cancel: threading.Event
               ) -> Iterator[Progress]:
        """Read (on the producer thread), embed and write the planned files, batch by batch;
        a cancel is noticed between batches, and inside a long embed call."""
        def prepare(st: FileStat, root: str) -> _Work:
            return self._prepare(st, root, run.rows.get(st.path), copies=run.copies)

        with _Producer(prepare, run.todo, cancel) as producer:
            self._stopping, self._pages = producer.stopping, None
            try:
                for batch in producer.batches():
                    if cancel.is_set():
                        break
                    if batch is None:  # the reader is busy with a file: say which
                        run.prog.reading = producer.current
                        pages = self._pages
                        run.prog.reading_pages = (pages[1].done, pages[1].total) if (
                            pages and pages[0] == producer.current) else None
                        run.prog.ocr_pages, run.prog.ocr_seconds = self._ocr_done
                        yield run.progress()
                        continue
                    run.prog.reading, run.prog.reading_pages = None, None
                    run.prog.ocr_pages, run.prog.ocr_seconds = self._ocr_done
                    t_embed = time.monotonic()
                    try:
                        gen = self._index_batch(batch, writes, cancel, run)
                        while True:
                            try:
                                yield next(gen)
                            except StopIteration as stop:
                                done = stop.value
                                break
                    except Cancelled:
                        break  # files whose vectors were not all made are indexed next time
                    run.prog.embed_seconds += time.monotonic() - t_embed
                    for w in done:
                        problem = run.count(w)
                        if problem:
                            yield run.progress(problem=problem)
                    if producer.finished or writes.due():
                        writes.flush()
                    yield run.progress()
            finally:
                if cancel.is_set():
                    writes.flush()  # whole files only: safe to keep

    # -- one file, on the producer thread ----------------------------------------------------

    def _prepare(self, st: FileStat, root: str, old: FileRow | None,
                 allow_copy: bool = True, *, copies: Mapping[str, FileRow] | None = None
                 ) -> _Work:
        """Read, hash and cut one file; what went wrong is on the _Work, not raised.

        `copies` (content already indexed, by hash) lets a moved or copied file skip
        extraction: its passages are taken from the other file. Without it, or with
        `allow_copy` False, the file is always cut afresh.
        """
        work = _Work(st, root, old=old)
        data = self._read(work)
        if data is None:
            return work
        work.hash = self._content_hash(data, st.kind)
        if old is not None and old.hash == work.hash and self._current(old):
            work.unchanged_content = True
            work.status, work.reason = old.status, old.reason
            return work
        source = copies.get(work.hash) if copies and allow_copy else None
        if source is not None and source.path != work.stat.path:
            work.copy_from = source
            return work
        self._cut(work, data)
        return work

    def _read(self, work: _Work) -> bytes | None:
        """The file's bytes once they hold still, or None with the reason on the work."""
        st = work.stat
        if st.size > MAX_FILE_BYTES:
            work.status, work.reason = "skipped", (
                f"too large ({st.size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)")
            return None
        try:
            data, work.stat = self._read_settled(st)
        except _StillChanging:
            work.deferred, work.status, work.reason = True, "pending", (
                "still being written; indexed once it settles")
        except FileNotFoundError:
            work.vanished, work.status, work.reason = True, "failed", (
                "disappeared while being indexed")
        except PermissionError:
            work.status, work.reason = "failed", "permission denied"
        except OSError as exc:
            work.status, work.reason = "failed", f"cannot be read ({exc.strerror or exc})"
        else:
            return data
        return None

    def _read_settled(self, st: FileStat) -> tuple[bytes, FileStat]:
        """Read a file whose size and mtime hold still across the read.

        A file still being written is read again a moment later; the stat kept is the one
        taken before the read that produced the data, so a later change is always noticed.
        """
        for attempt in range(_SETTLE_TRIES):
            with open(st.path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
            after = stat_file(st.path)
            if after is None:
                raise FileNotFoundError(st.path)
            if (after.size, after.mtime_ns) == (st.size, st.mtime_ns) and len(data) == st.size:
                return data, st
            st = after
            if attempt + 1 < _SETTLE_TRIES:
                time.sleep(_SETTLE_PAUSE)
        raise _StillChanging(st.path)

    def _content_hash(self, data: bytes, kind: str) -> str:
        """The version of the file's passages: its content, and how they were cut.

        Passages of the same bytes cut with other settings must not share it, or re-indexing
        with a new passage length would keep the old passages beside the new ones (same hash,
        same ids).
        """
        digest = hashlib.blake2b(data, digest_size=16)
        digest.update(b"\0" + self.version_of(kind).encode())
        return digest.hexdigest()

    def _cut(self, work: _Work, data: bytes) -> None:
        """Extract the file's text and cut it into passages."""
        path = work.stat.path

        def pages(p: extract.Pages) -> None:  # on the producer thread; the consumer reads
            self._pages = (path, p)
            done, seconds = self._ocr_done
            self._ocr_done = (done + 1, seconds + p.seconds)

        try:
            doc = extract.extract_file(path, data, self.extraction, progress=pages,
                                       stopping=self._stopping)
        except extract.Skipped as exc:
            work.status, work.reason = "skipped", exc.reason
            return
        except extract.ExtractionError as exc:
            work.status, work.reason = "failed", exc.reason
            return
        for section in doc.sections:
            work.chunks.extend(chunk_text(section.text, self.embedder, self.settings,
                                          page=section.page, first_ordinal=len(work.chunks)))
        work.ocr = ocr_rows(work.hash, doc.sections)
        if not work.chunks:
            work.status, work.reason = "skipped", "no text"

    # -- one batch, on the calling thread ----------------------------------------------------

    def _index_batch(self, works: list[_Work], writes: _Writes,
                     cancel: threading.Event | None = None, run: _Run | None = None
                     ) -> Generator[Progress, None, list[_Work]]:
        """Embed a batch of prepared files and buffer their rows for the next write, yielding
        progress within a large file (its passages embedded so far) as it goes.

        Returns the batch's files, as finally prepared (a copy may have been cut afresh).
        """
        reused = self._fetch_copies(works)
        seqs = [c.tokens for w in works for c in w.chunks]
        vectors = np.empty((len(seqs), self.embedder.dims), dtype=np.float32)
        starts, at = [], 0  # where each file's passages begin in seqs
        for w in works:
            starts.append(at)
            at += len(w.chunks)
        tokens_done = 0
        for start in range(0, len(seqs), _EMBED_SLICE):
            end = min(len(seqs), start + _EMBED_SLICE)
            vectors[start:end] = self.embedder.embed_tokens(seqs[start:end], cancel=cancel)
            tokens_done += sum(len(t) for t in seqs[start:end])
            if run is not None and len(seqs) > _EMBED_SLICE:
                first = bisect.bisect_right(starts, start) - 1  # the file of the slice's start
                last = bisect.bisect_right(starts, end - 1) - 1  # ... and of its end
                for i in range(first, last + 1):
                    w, prog = works[i], run.prog
                    if i < last and len(w.chunks) <= _EMBED_SLICE:
                        continue  # a small file finished within the slice: nothing to show
                    prog.current = w.stat.path
                    prog.file_passages_done = min(end, starts[i] + len(w.chunks)) - starts[i]
                    prog.file_passages_total = len(w.chunks)
                    prog.partial_tokens = tokens_done
                    prog.partial_bytes = sum(x.stat.size for x in works[:i]) + int(
                        w.stat.size * prog.file_passages_done / max(1, len(w.chunks)))
                    yield run.progress()
        i = 0
        now = time.time()
        for w, rows in zip(works, reused, strict=True):
            n = len(w.chunks)
            self._buffer(w, rows, vectors[i:i + n], writes, now)
            i += n
        return works

    def _fetch_copies(self, works: list[_Work]) -> list[list[dict[str, Any]]]:
        """The stored passages (vectors included) of each file that copies an indexed one;
        [] for the others.

        A copy whose source changed since the plan is read and cut afresh, here: rare, and
        only known once the source's passages are looked up.
        """
        reused: list[list[dict[str, Any]]] = []
        for n, w in enumerate(works):
            rows: list[dict[str, Any]] = []
            if w.copy_from is not None:
                rows = self.store.passages_of(w.copy_from.file_id, w.copy_from.hash)
                if len(rows) != w.copy_from.n_chunks:
                    works[n] = self._prepare(w.stat, w.root, w.old, allow_copy=False)
                    rows = []
            reused.append(rows)
        return reused

    def _buffer(self, w: _Work, reused: list[dict[str, Any]], vectors: Sequence[Any],
                writes: _Writes, now: float) -> None:
        """Queue one file's rows: its passages (fresh or reused) and its file row, or, for a
        file that vanished while being read, that it is gone."""
        fid = file_id_for(w.stat.path)
        if w.vanished:
            writes.forgotten.append(fid)
            return
        if w.deferred:
            return
        writes.passages.extend(passage_rows(fid, w.hash, w.stat.path, w.stat.kind,
                                            w.chunks, vectors, reused))
        writes.ocr.extend(w.ocr)
        n_chunks = len(w.chunks)
        n_tokens = sum(len(c.tokens) for c in w.chunks)
        if w.unchanged_content and w.old is not None:
            n_chunks, n_tokens = w.old.n_chunks, w.old.n_tokens
        elif reused and w.copy_from is not None:
            n_chunks, n_tokens = w.copy_from.n_chunks, w.copy_from.n_tokens
        writes.files.append(FileRow(
            file_id=fid, path=w.stat.path, root=w.root, kind=w.stat.kind,
            size=w.stat.size, mtime_ns=w.stat.mtime_ns, hash=w.hash, status=w.status,
            reason=w.reason, n_chunks=n_chunks, n_tokens=n_tokens,
            sig=self.version_of(w.stat.kind, w.status),
            indexed_at=now))


def _under_any(path: str, tops: set[str]) -> bool:
    """Whether path is one of tops or inside one (a walk up its parents, not a scan of tops)."""
    if not tops:
        return False
    while True:
        if path in tops:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
