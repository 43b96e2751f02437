"""One data dir, one active model: the object both the CLI and the GUI worker drive.

It resolves which model to use (the person's choice, else the one last indexed with, else the
starter), opens that model's store, loads the model only when vectors are needed (keyword
search and status never load weights), and remembers folders and the model in state.json.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from desktop.extract.settings import ExtractSettings
from desktop.index import remote_dir
from desktop.index.indexer import Indexer, Progress
from desktop.index.lock import WriterLock, writer_alive
from desktop.index.remote_dir import RemoteDocs, companion_dir
from desktop.index.scan import ScanProblem, displayable, is_under, scan_folder
from desktop.index.state import ModelChoice, State
from desktop.index.store import FileRow, Store
from desktop.models import model_check
from desktop.models.embedder import Embedder, EmbedderSettings, load_params, model_key
from desktop.models.gguf_info import ModelInfo, read_model_info
from desktop.models.profiles import Profile, detect_profile
from desktop.paths import resolve_data_dir
from desktop.search import Hit, Query
from desktop.search.rank import search, search_vector

log = logging.getLogger(__name__)


@dataclass
class ModelRef:
    path: Path
    info: ModelInfo
    profile: Profile
    key: str
    is_starter: bool


def resolve_model(state: State, model: str | os.PathLike[str] | None = None,
                  family: str | None = None) -> ModelRef:
    """The model to use, validated from its metadata without loading weights."""
    from desktop.models.starter import starter_model_path

    chosen = model or state.model.path
    family = family or (state.model.family if not model else None)
    path = Path(chosen).expanduser().resolve() if chosen else starter_model_path()
    info = read_model_info(path)
    profile = detect_profile(info, family)
    return ModelRef(path, info, profile, model_key(info, profile), not chosen)


class Engine:
    def __init__(self, data_dir: str | os.PathLike[str] | None = None,
                 model: str | os.PathLike[str] | None = None, family: str | None = None,
                 settings: EmbedderSettings | None = None,
                 extraction: ExtractSettings | None = None):
        located = resolve_data_dir(data_dir)
        self.extraction = extraction or ExtractSettings()
        # A data dir on object storage (s3://...): the tables and the state live there, and
        # this machine keeps a folder of its own for its OS lock (remote_dir).
        self.data_uri: str | None = located if isinstance(located, str) else None
        self._docs: RemoteDocs | None = None
        if self.data_uri is not None:
            self.data_dir = companion_dir(self.data_uri)
            self._docs = RemoteDocs(remote_dir.connect(self.data_uri))
            try:
                self.state = self._read_state()
            except (ValueError, OSError, RuntimeError) as exc:
                raise remote_dir.RemoteDirError(
                    f"{self.data_uri}: {remote_dir.explain(exc)}") from None
        else:
            self.data_dir = located
            self.state = self._read_state()
        self.model = resolve_model(self.state, model, family)
        self.settings = settings or EmbedderSettings()
        self._embedder: Embedder | None = None
        self._store: Store | None = None
        self._writer: WriterLock | None = None  # held while writing (Engine.writing)

    @property
    def db_dir(self) -> Path | str:
        """The database: a folder in the data dir, or its URI on object storage."""
        return f"{self.data_uri}/lancedb" if self.data_uri else self.data_dir / "lancedb"

    @property
    def location(self) -> str:
        """The data dir as the person named it (a folder, or s3://bucket/prefix)."""
        return self.data_uri or str(self.data_dir)

    def _read_state(self) -> State:
        return State.load(self._docs if self._docs is not None else self.data_dir)

    @property
    def own_files(self) -> str:
        """A pattern for the data dir's own files: never indexed, even inside a folder that is
        (the home folder holds the data dir on macOS and Windows), or every write of the index
        would be a change to index."""
        return os.path.join(glob.escape(str(self.data_dir)), "*")

    @property
    def embedder(self) -> Embedder:
        return self.load_embedder()

    def load_embedder(self, cancel: threading.Event | None = None) -> Embedder:
        """The loaded model. The first use of a file with these settings is a trial load in a
        child process (model_check): a file that crashes llama.cpp there is refused
        (ModelUnusable) and never loaded here. `cancel` stops a trial that is under way."""
        if self._embedder is None:
            settings = self.embedder_settings
            if settings.embed_url:  # the weights are loaded by the server, not here
                from desktop.models.remote import RemoteEmbedder

                self._embedder = RemoteEmbedder(self.model.path, settings.embed_url, settings)
                return self._embedder
            model_check.ensure_usable(self.model.info, self.model.profile, settings,
                                      cancel=cancel)
            self._embedder = Embedder(self.model.path, settings)
        return self._embedder

    @property
    def embedder_settings(self) -> EmbedderSettings:
        s = self.settings
        return replace(s, family=self.model.profile.family)

    def compute(self) -> dict[str, Any]:
        """Where the vectors are computed: the loaded model's placement (with the note of a
        fall-back from the GPU), else what loading it would decide now."""
        s = self.embedder_settings
        if s.embed_url:
            return {"backend": "remote", "device": s.embed_url, "gpu_layers": None,
                    "text": f"the embedding server at {s.embed_url}", "why": "", "note": ""}
        emb = self._embedder
        if emb is not None and hasattr(emb, "load_params"):
            p, note = emb.load_params, getattr(emb, "fallback_note", "")
        else:
            p, note = load_params(self.model.info, self.model.profile, s), ""
        return {"backend": p.backend, "device": p.device or ("cpu" if not p.gpu_layers
                                                             else None),
                "gpu_layers": p.gpu_layers, "text": p.compute or "CPU", "why": p.gpu_layers_why,
                "note": note}

    def model_check(self) -> model_check.CheckResult | None:
        """The remembered outcome of the active model's trial load: with these settings, else
        the newest one with any (an index built with other passage lengths, say)."""
        exact = model_check.remembered(self.model.info, self.model.profile,
                                       self.embedder_settings)
        return exact or model_check.latest([self.model.path]).get(self.model.path)

    @property
    def store(self) -> Store:
        if self._store is None:
            dims = self.model.info.embedding_length
            if dims is None:  # pragma: no cover - refused by detect_profile
                dims = self.embedder.dims
            self._store = Store(self.db_dir, self.model.key, dims)
        return self._store

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- indexing ----------------------------------------------------------------------------

    @contextmanager
    def writing(self, mode: str = "index") -> Iterator[WriterLock]:
        """The data dir's writer lock, for one run of writes: every write to the index and
        every save of state.json happens inside it, and this is the only place that takes it
        (DataDirBusy when another process holds it). Nested uses share the lock held.

        Taking it reads the state file again, so that folders another process added while
        this engine was not writing (a window that stood paused while `semdex index` ran)
        join this library, rather than have this run save over them."""
        if self._writer is not None:
            yield self._writer
            return
        lock = WriterLock(self.data_dir, mode, self.location).acquire()
        lease = None
        try:
            if self._docs is not None:  # and across machines: the bucket's lease
                lease = remote_dir.Lease(self._docs.db, self.location, mode).acquire()
            self._writer = lock
            for path, folder in self._read_state().folders.items():
                self.state.folders.setdefault(path, folder)
            yield lock
        finally:
            self._writer = None
            if lease is not None:
                lease.release()
            lock.release()

    def _save_state(self) -> None:
        if self._writer is None:
            raise RuntimeError("state.json is saved only under the writer lock "
                               "(Engine.writing)")
        self.state.save(self._docs if self._docs is not None else self.data_dir)

    def remember_model(self) -> None:
        """Make this model the data dir's active one (what `index --model` means)."""
        self.state.model = ModelChoice(
            path=None if self.model.is_starter else str(self.model.path),
            family=self.model.profile.family if not self.model.is_starter else None)
        with self.writing():
            self._save_state()

    def check_folder(self, path: str | os.PathLike[str]) -> str:
        """The absolute folder a person asked to add, or ValueError saying why it cannot be."""
        root = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not os.path.isdir(root):
            raise NotADirectoryError(f"not a folder: {root}")
        if is_under(root, str(self.data_dir)):
            raise ValueError(f"{root} is inside Semdex's own data folder")
        return root

    def add_folders(self, paths: Sequence[str | os.PathLike[str]] | None = None
                    ) -> list[str]:
        """Add folders to the library; return them, or every known folder that exists."""
        with self.writing():
            return self._resolve_roots(paths)[0]

    def remove_folder(self, path: str, also: Iterable[Store] = ()) -> int:
        """Take a folder out of the library and forget its index (the files stay on disk);
        `also`: the stores of other models to forget it in (a switch under way). Returns how
        many files were forgotten."""
        root = os.path.abspath(os.path.expanduser(path))
        with self.writing():
            self.state.folders.pop(root, None)
            self._save_state()
            forgotten = 0
            for store in {id(s): s for s in (self.store, *also)}.values():
                ids = [r.file_id for r in store.file_rows(root).values()]
                if ids:
                    store.remove_files(ids)
                forgotten = max(forgotten, len(ids))
        return forgotten

    def _resolve_roots(self, paths: Sequence[str | os.PathLike[str]] | None
                       ) -> tuple[list[str], list[tuple[str, str]]]:
        roots: list[str] = []
        missing: list[tuple[str, str]] = []
        if paths:
            roots = [self.check_folder(p) for p in paths]
        else:
            for root in self.state.folders:
                if os.path.isdir(root):
                    roots.append(root)
                else:  # a known folder on a drive that is not plugged in: keep its index
                    missing.append((root, "folder not found (its index is kept)"))
        for root in roots:
            self.state.add_folder(root)
        self._save_state()
        return roots, missing

    def index(self, paths: Sequence[str | os.PathLike[str]] | None = None, *,
              cancel: threading.Event | None = None, excludes: Sequence[str] = (),
              overlap: int | None = None, scope: Iterable[str] | None = None,
              optimize: bool = True) -> Iterator[Progress]:
        """Index the given folders (added to the library), or all known folders.

        With a scope (paths a watcher saw change) only those paths are synced. It writes under
        the writer lock (Engine.writing): the one held, or one taken for this run.
        """
        with self.writing():
            if scope is None:
                roots, missing = self._resolve_roots(paths)
            else:
                scope = set(scope)
                roots = [os.path.abspath(os.fspath(p)) for p in paths or self.state.folders]
                missing = []
            yield from self._index(roots, missing, cancel, excludes, overlap, scope, optimize)

    def _index(self, roots: list[str], missing: list[tuple[str, str]],
               cancel: threading.Event | None, excludes: Sequence[str], overlap: int | None,
               scope: set[str] | None, optimize: bool) -> Iterator[Progress]:
        for problem in missing:
            yield Progress("scanning", problem=problem, problems=list(missing))
        indexer = Indexer(self.store, self.embedder, overlap=overlap,
                          excludes=(*excludes, self.own_files), extraction=self.extraction)
        for prog in indexer.run(roots, cancel, scope=scope, optimize=optimize,
                                library=list(self.state.folders)):
            if missing:  # part of this run's problems (a copy: the indexer owns its list)
                prog = replace(prog, problems=[*missing, *prog.problems])
            if prog.phase == "done":  # the run is recorded first, so a status taken on
                self._record_run(roots, scope, prog, excludes)  # "done" is current
            yield prog

    def _record_run(self, roots: list[str], scope: set[str] | None, last: Progress,
                    excludes: Sequence[str] = ()) -> None:
        now = time.time()
        # Problems of files that have a row (failed/skipped) are shown from the store;
        # the rest (unlistable folders, broken links, files that vanished) are kept here.
        # Only the problem paths are looked up: reading the whole files table here doubled the
        # cost of every live sync on a large library.
        candidates = {p for p, _ in last.problems}
        for root in roots:
            candidates.update(self.state.add_folder(root).problems)
        rows = self.store.paths_with_rows(candidates)
        # problems are kept under their printable path (a name that is not UTF-8 too)
        synced = None if scope is None else scope | {displayable(s) for s in scope}
        for root in roots:
            folder = self.state.add_folder(root)
            folder.last_sync = now
            if scope is None:  # what status counts as pending is what this run would index
                folder.excludes = list(excludes)
            kept = {} if synced is None else {
                p: r for p, r in folder.problems.items()
                if not any(is_under(p, s) for s in synced) and p not in rows}
            kept.update({p: r for p, r in last.problems
                         if is_under(p, root) and p not in rows})
            folder.problems = kept
        self._save_state()

    # -- searching ---------------------------------------------------------------------------

    def run_query(self, q: Query) -> list[Hit]:
        return self.search(q.text, mode=q.mode, k=q.k, per_file=q.per_file, task=q.task,
                           instruction=q.instruction, filters=q.filters)

    def search(self, query: str, **kw: Any) -> list[Hit]:
        embedder = None if kw.get("mode") == "keyword" else self.embedder
        return search(self.store, embedder, query, **kw)

    def search_many(self, queries: Sequence[str], *, mode: str = "hybrid",
                    task: str | None = None, instruction: str | None = None, **kw: Any
                    ) -> Iterator[list[Hit]]:
        """Batch queries: their vectors are computed together, which is much faster."""
        vectors = [None] * len(queries)
        if mode != "keyword":
            vectors = list(self.embedder.embed_queries(queries, task, instruction))
        for q, v in zip(queries, vectors, strict=True):
            yield search_vector(self.store, v, q, mode=mode, **kw)

    # -- status ------------------------------------------------------------------------------

    def folder_counts(self) -> dict[str, dict[str, int]]:
        """Files indexed, failed and skipped, and passages, per watched folder: status() in
        brief, cheap enough to show live while a run goes on."""
        counts = self.store.folder_counts()
        return {root: counts.get(root, {"files_indexed": 0, "files_failed": 0,
                                        "files_skipped": 0, "passages": 0})
                for root in self.state.folders}

    def pending(self, root: str, rows: dict[str, FileRow]) -> list[str]:
        """Files whose index differs from the disk (new, changed, gone), by stat alone."""
        if not os.path.isdir(root):
            return []
        out, seen = [], set()
        folder = self.state.folders.get(root)
        excludes = (*(folder.excludes if folder else ()), self.own_files)
        for item in scan_folder(root, excludes):
            if isinstance(item, ScanProblem):
                continue
            seen.add(item.path)
            row = rows.get(item.path)
            if row is None or (row.size, row.mtime_ns) != (item.size, item.mtime_ns):
                out.append(item.path)
        out += [p for p in rows if is_under(p, root) and p not in seen]
        return sorted(out)

    def _check_status(self) -> dict[str, Any] | None:
        try:
            result = self.model_check()
        except Exception as exc:  # noqa: BLE001 - status must not fail on the model's account
            log.warning("could not read the model check of %s: %s", self.model.path, exc)
            return None
        return None if result is None else result.to_dict()

    def status(self) -> dict[str, Any]:
        by_path = self.store.file_rows()
        rows = list(by_path.values())
        writer = (remote_dir.lease_holder(self._docs.db) if self._docs is not None
                  else writer_alive(self.data_dir))
        watching = bool(writer and writer.get("mode") == "watch" and writer.get("live", True))
        folders = []
        for root, fs in sorted(self.state.folders.items()):
            mine = [r for r in rows if r.root == root]
            pending = self.pending(root, by_path)
            problems = [{"path": r.path, "status": r.status, "reason": r.reason}
                        for r in mine if r.status != "ok"]
            problems += [{"path": p, "status": "failed", "reason": why}
                         for p, why in fs.problems.items()]
            folders.append({
                "path": root,
                "exists": os.path.isdir(root),
                "files_indexed": sum(1 for r in mine if r.status == "ok"),
                "files_failed": sum(1 for p in problems if p["status"] == "failed"),
                "files_skipped": sum(1 for r in mine if r.status == "skipped"),
                "passages": sum(r.n_chunks for r in mine if r.status == "ok"),
                "tokens": sum(r.n_tokens for r in mine if r.status == "ok"),
                "pending": len(pending),
                "pending_files": pending[:50],
                "last_sync": fs.last_sync,
                "watcher_live": watching,
                "problems": sorted(problems, key=lambda p: p["path"]),
            })
        m = self.model
        return {
            "data_dir": self.location,
            "model": {
                "path": str(m.path), "name": m.info.name, "family": m.profile.family,
                "dims": m.info.embedding_length, "quantization": m.info.quantization,
                "pooling": m.profile.pooling_name, "key": m.key, "starter": m.is_starter,
                "check": self._check_status(),
                # where vectors are computed: None here, else the embedding server's address
                "embed_url": self.settings.embed_url,
            },
            "compute": self.compute(),
            "passages": self.store.count_chunks(),
            "files": sum(1 for r in rows if r.status == "ok"),
            "writer": writer,
            "folders": folders,
        }
