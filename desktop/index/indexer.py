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

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from desktop import extract
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
from desktop.index.store import FileRow, Store, file_id_for
from desktop.models.embedder import Cancelled, Embedder

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 256 * 1024 * 1024
EXTRACT_VERSION = 1
_FLUSH_CHUNKS = 512  # passages buffered before a write (each write is a LanceDB version)
_FLUSH_SECONDS = 10.0  # at most this long between writes; the first come sooner:
_FIRST_FLUSH_SECONDS = 1.0  # 1, 2, 4, 8, then every 10 s: a new folder is searchable at once
_FLUSH_FILES = 2000  # file rows buffered (touched or failed files carry no passages)
_SETTLE_TRIES = 4
_SETTLE_PAUSE = 0.25


class _StillChanging(Exception):
    pass


def format_duration(seconds: float | None, *, compact: bool = False) -> str:
    """A time left or taken: "2 min 05 s" for the window, "2m05s" (compact) for a terminal."""
    if seconds is None:
        return "--" if compact else "…"
    s = int(seconds)
    if s >= 3600:
        hours, minutes = s // 3600, s % 3600 // 60
        return f"{hours}h{minutes:02d}m" if compact else f"{hours} h {minutes:02d} min"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s" if compact else f"{s // 60} min {s % 60:02d} s"
    return f"{s}s" if compact else f"{s} s"


@dataclass
class Progress:
    """What the person sees while indexing; emitted often, cheap to copy."""

    phase: str  # scanning | indexing | finishing | done | cancelled
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
    problem: tuple[str, str] | None = None  # (path, reason), reported once
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.phase != "indexing" or not self.bytes_done or self.elapsed <= 0:
            return None
        rate = self.bytes_done / self.elapsed
        return max(0.0, (self.bytes_total - self.bytes_done) / rate)


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


class Indexer:
    def __init__(self, store: Store, embedder: Embedder, *, overlap: int | None = None,
                 excludes: Sequence[str] = ()):
        self.store = store
        self.embedder = embedder
        chunk = embedder.chunk_tokens
        self.settings = ChunkSettings(chunk, overlap if overlap is not None else chunk // 8)
        self.excludes = tuple(excludes)
        self.sig = (f"{embedder.profile.family}/{self.settings.max_tokens}/"
                    f"{self.settings.overlap}/x{EXTRACT_VERSION}")

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
            if item.path in seen:
                continue
            seen.add(item.path)
            row = rows.get(item.path)
            if (row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns
                    and row.sig == self.sig and row.status != "failed"
                    and item.path not in named):
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
        t0 = time.monotonic()
        prog = Progress("scanning")
        yield replace(prog)
        if scope is None:
            self.store.purge_orphans()  # what a crash left half-written
        todo, gone, scan_problems, unchanged, rows = self.plan(roots, scope, library)
        self._wrote = False
        bad_files = sum(1 for p in scan_problems if not p.folder)
        prog.files_total = prog.files_done = prog.files_failed = bad_files
        for p in scan_problems:
            prog.problems.append((p.path, p.reason))
            yield replace(prog, problem=(p.path, p.reason), elapsed=time.monotonic() - t0)
        # Vanished files are matched against new ones by content before they are forgotten.
        self._reusable = {r.hash: r for r in rows.values()
                          if r.status == "ok" and r.sig == self.sig and r.n_chunks}
        prog.files_removed = len(gone)
        prog.files_unchanged = unchanged
        prog.files_total = len(todo) + bad_files
        prog.bytes_total = sum(s.size for s, _ in todo)
        prog.phase = "indexing"
        yield replace(prog, elapsed=time.monotonic() - t0)

        work_q: queue.Queue[_Work | None] = queue.Queue(maxsize=64)
        stop = threading.Event()
        producer = threading.Thread(target=self._produce, args=(todo, rows, work_q, stop, cancel),
                                    name="semdex-extract", daemon=True)
        producer.start()
        pending: list[_Work] = []  # read and chunked, waiting for vectors
        out_chunks: list[dict] = []
        out_files: list[FileRow] = []
        last_flush = time.monotonic()
        flush_every = _FIRST_FLUSH_SECONDS
        try:
            while True:
                item = work_q.get()
                if item is not None:
                    pending.append(item)
                n_pending = sum(len(w.chunks) for w in pending)
                if item is not None and n_pending < 64 and not work_q.empty():
                    continue
                if cancel.is_set():
                    break
                t_embed = time.monotonic()
                try:
                    done = self._embed(pending, out_chunks, out_files, cancel)
                except Cancelled:
                    break  # files whose vectors were not all made are indexed next time
                prog.embed_seconds += time.monotonic() - t_embed
                pending = []
                for w in done:
                    prog.files_done += 1
                    prog.bytes_done += w.stat.size
                    prog.chunks += len(w.chunks)
                    prog.tokens += sum(len(c.tokens) for c in w.chunks)
                    prog.files_reused += w.copy_from is not None and not w.chunks
                    problem = None
                    if w.deferred:
                        prog.files_pending += 1
                    elif w.status != "ok":
                        if w.status == "failed":
                            prog.files_failed += 1
                        else:
                            prog.files_skipped += 1
                        problem = (w.stat.path, w.reason)
                        prog.problems.append(problem)
                    prog.current = w.stat.path
                    if problem:
                        yield replace(prog, problem=problem, elapsed=time.monotonic() - t0)
                if (len(out_chunks) >= _FLUSH_CHUNKS or len(out_files) >= _FLUSH_FILES
                        or item is None
                        or time.monotonic() - last_flush > flush_every):
                    self._flush(out_chunks, out_files)
                    last_flush = time.monotonic()
                    flush_every = min(_FLUSH_SECONDS, flush_every * 2)
                yield replace(prog, elapsed=time.monotonic() - t0)
                if item is None:
                    break
        finally:
            stop.set()
            if cancel.is_set():
                self._flush(out_chunks, out_files)  # whole files only: safe to keep
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    work_q.get(timeout=0.05)
                except queue.Empty:
                    pass
        if cancel.is_set():
            prog.phase = "cancelled"
            yield replace(prog, elapsed=time.monotonic() - t0)
            return
        if gone:
            self.store.remove_files([r.file_id for r in gone])
            self._wrote = True
        prog.phase = "finishing"
        yield replace(prog, elapsed=time.monotonic() - t0)
        if optimize and self._wrote:
            self.store.optimize()
        prog.phase = "done"
        yield replace(prog, elapsed=time.monotonic() - t0, current=None)

    def _produce(self, todo: Sequence[tuple[FileStat, str]], rows: dict[str, FileRow],
                 out: queue.Queue[_Work | None], stop: threading.Event,
                 cancel: threading.Event) -> None:
        try:
            for st, root in todo:
                if stop.is_set() or cancel.is_set():
                    break
                try:
                    work = self._prepare(st, root, rows.get(st.path))
                except Exception as exc:  # a bug must not stall the run: report, go on
                    log.exception("failed to prepare %s", st.path)
                    work = _Work(st, root, status="failed",
                                 reason=f"internal error: {type(exc).__name__}: {exc}")
                out.put(work)
        finally:
            out.put(None)

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

    def _prepare(self, st: FileStat, root: str, old: FileRow | None,
                 allow_copy: bool = True) -> _Work:
        work = _Work(st, root, old=old)
        if st.size > MAX_FILE_BYTES:
            work.status, work.reason = "skipped", (
                f"too large ({st.size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)")
            return work
        try:
            data, st = self._read_settled(st)
            work.stat = st
        except _StillChanging:
            work.deferred, work.status, work.reason = True, "pending", (
                "still being written; indexed once it settles")
            return work
        except FileNotFoundError:
            work.vanished, work.status, work.reason = True, "failed", (
                "disappeared while being indexed")
            return work
        except PermissionError:
            work.status, work.reason = "failed", "permission denied"
            return work
        except OSError as exc:
            work.status, work.reason = "failed", f"cannot be read ({exc.strerror or exc})"
            return work
        # The version of the file's passages: its content, and how they were cut. Passages of
        # the same bytes cut with other settings must not share it, or re-indexing with a new
        # passage length would keep the old passages beside the new ones (same hash, same ids).
        digest = hashlib.blake2b(data, digest_size=16)
        digest.update(b"\0" + self.sig.encode())
        work.hash = digest.hexdigest()
        if old is not None and old.hash == work.hash and old.sig == self.sig and \
                old.status != "failed":
            work.unchanged_content = True
            work.status, work.reason = old.status, old.reason
            return work
        source = self._reusable.get(work.hash)
        if allow_copy and source is not None and source.path != st.path:
            work.copy_from = source
            return work
        try:
            doc = extract.extract(st.path, data)
        except extract.Skipped as exc:
            work.status, work.reason = "skipped", exc.reason
            return work
        except extract.ExtractionError as exc:
            work.status, work.reason = "failed", exc.reason
            return work
        for section in doc.sections:
            work.chunks.extend(chunk_text(section.text, self.embedder, self.settings,
                                          page=section.page, first_ordinal=len(work.chunks)))
        if not work.chunks:
            work.status, work.reason = "skipped", "no text"
        return work

    def _embed(self, works: list[_Work], out_chunks: list[dict], out_files: list[FileRow],
               cancel: threading.Event | None = None) -> list[_Work]:
        copied: dict[int, list[dict]] = {}
        for n, w in enumerate(works):
            if w.copy_from is not None:
                rows = self.store.passages_of(w.copy_from.file_id, w.copy_from.hash)
                if len(rows) == w.copy_from.n_chunks:
                    copied[n] = rows
                else:  # the source changed meanwhile: cut and embed this file after all
                    works[n] = self._prepare(w.stat, w.root, w.old, allow_copy=False)
        seqs = [c.tokens for w in works for c in w.chunks]
        vectors = self.embedder.embed_tokens(seqs, cancel=cancel) if seqs else None
        i = 0
        now = time.time()
        for n, w in enumerate(works):
            fid = file_id_for(w.stat.path)
            if w.vanished:
                self.store.remove_files([fid])
                continue
            if w.deferred:
                continue
            for r in copied.get(n, ()):
                out_chunks.append({**r, "id": f"{fid}:{w.hash[:12]}:{r['ordinal']}",
                                   "file_id": fid, "path": w.stat.path, "kind": w.stat.kind})
            for c in w.chunks:
                out_chunks.append({
                    "id": f"{fid}:{w.hash[:12]}:{c.ordinal}", "file_id": fid, "hash": w.hash,
                    "path": w.stat.path, "kind": w.stat.kind, "ordinal": c.ordinal,
                    "page": c.page, "start": c.start, "end": c.end,
                    "line_start": c.line_start, "line_end": c.line_end,
                    "n_tokens": len(c.tokens), "text": c.text, "vector": vectors[i],
                })
                i += 1
            n_chunks = len(w.chunks)
            n_tokens = sum(len(c.tokens) for c in w.chunks)
            if w.unchanged_content and w.old is not None:
                n_chunks, n_tokens = w.old.n_chunks, w.old.n_tokens
            elif n in copied and w.copy_from is not None:
                n_chunks, n_tokens = w.copy_from.n_chunks, w.copy_from.n_tokens
            out_files.append(FileRow(
                file_id=fid, path=w.stat.path, root=w.root, kind=w.stat.kind,
                size=w.stat.size, mtime_ns=w.stat.mtime_ns, hash=w.hash, status=w.status,
                reason=w.reason, n_chunks=n_chunks, n_tokens=n_tokens, sig=self.sig,
                indexed_at=now))
        return works

    def _flush(self, out_chunks: list[dict], out_files: list[FileRow]) -> None:
        if not out_chunks and not out_files:
            return
        import pyarrow as pa

        from desktop.index.store import chunk_schema

        table = pa.Table.from_pylist(out_chunks, schema=chunk_schema(self.store.dims))
        self.store.write(table, out_files)
        self._wrote = True
        out_chunks.clear()
        out_files.clear()


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


def index_folders(store: Store, embedder: Embedder, roots: Sequence[str], **kw
                  ) -> Iterator[Progress]:
    roots = [os.path.abspath(r) for r in roots]
    yield from Indexer(store, embedder, **kw).run(roots)
