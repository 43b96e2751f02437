"""The passage store at scale: synthetic passages written straight into a real Semdex store.

No model and no files: per size (passages x dimensions) the script makes synthetic passages with
the store's real schema (desktop/index/store.py `chunk_schema`, `FileRow`), 20 per file, and
writes them in batches into a fresh store, then measures what a person's search and the app's
bookkeeping cost at that size:

* the data: five kinds of file (pdf, text, markdown, code, html) in 50 folders, each file in a
  folder of its own (so a folder filter can name one file); texts of Zipf-distributed words from
  a synthetic 30k-word vocabulary; *clustered* unit vectors (a 64-d latent drawn from a mixture
  of 1000 Gaussians, each file near one centre, projected to D dimensions by a fixed random
  matrix, plus noise, L2-normalised); queries are perturbed held-out points of the same mixture;
* write time (the store calls only, not the generation), index build time (the full-text index
  made after the first batch, as `Store.write` does, plus `Store.optimize()`, which builds
  whatever indexes the store builds), peak RSS of each phase (write, index build, queries: each
  in a process of its own), disk size of the data dir;
* query latency p50/p95 (`desktop.search.rank.search_vector` with a precomputed vector, so no
  query embedding) for semantic, keyword and hybrid search, each with no filter, a folder
  filter (one of 50 folders, ~2%), a type filter (pdf, ~20%) and a one-file filter;
* recall@10 of semantic search against exact numpy ground truth (X @ q over every stored
  vector, computed batch by batch as they are written), per filter; whether a filtered query
  returns as many results as exist (up to k), for every mode, and never a passage outside it;
* the bookkeeping that reads whole tables, each timed once on the clean store with its files
  made on disk (sparse files of the recorded size and mtime, in a phase of their own):
  `Store.file_rows()`, `Store.folder_counts()`, `Store.purge_orphans()`, `Engine.status()`
  (each folder's pending count stats every file) and the sync planner of a full re-scan
  (`Indexer.plan`: every file stat'ed and compared with its row; all must come out unchanged).

Usage:
    python bench/scale.py                          # 384-d at 10k and 100k, 4096-d at 10k
    python bench/scale.py --sizes 384:5000         # a smoke run
    python bench/scale.py --full                   # adds 384-d at 1M, 4096-d at 50k and 100k

Prints Markdown tables headed by the command and writes bench/out/scale-results.json. The
stores are kept under bench/out/scale/ (`--reuse` queries them again without rebuilding, while
the spec and the store's code, desktop/index/{store,indexes}.py and desktop/search/rank.py, are
unchanged).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SIZES = "384:10000,384:100000,4096:10000"
FULL_SIZES = "384:1000000,4096:50000,4096:100000"
PER_FILE_PASSAGES = 20
KINDS = ("pdf", "text", "markdown", "code", "html")
EXTS = {"pdf": "pdf", "text": "txt", "markdown": "md", "code": "py", "html": "html"}
FOLDERS = 50
SUBFOLDERS = 20
BENCH_ROOT = "library"  # the watched folder, in each size's folder: its files are made on disk
# (sparse, with the size and mtime the files table records) only for the bookkeeping phase
LATENT = 64
FILE_SPREAD = 0.2  # a file's centre around its cluster's (per latent dimension)
PASSAGE_SPREAD = 0.25  # a passage around its file's centre
QUERY_PERTURB = 0.1  # a query around a held-out point
QUERY_MIN_RANK = 100  # query words skip the 100 commonest (they act as stop words would)
FILTERS = ("none", "folder", "type", "file")
MODES = ("semantic", "keyword", "hybrid")
# consonant-vowel syllables with vowels a/o/u only and words that end in a vowel: the English
# stemmer of the full-text index leaves such words as they are, so the word counts computed here
# are the index's own
_CONS = "bdfgklmnprstvz"
_VOWELS = "aou"


# -- the synthetic library -----------------------------------------------------------------

def vocabulary(n: int, seed: int) -> list[str]:
    """n distinct made-up words, shortest first (common words are short: rank 0 is the most
    frequent)."""
    rng = np.random.default_rng([seed, 1])
    syll = [c + v for c in _CONS for v in _VOWELS]
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        k = int(rng.integers(2, 5))
        w = "".join(syll[j] for j in rng.integers(0, len(syll), k))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return sorted(out, key=len)


def zipf_cdf(n: int, s: float, start: int = 0) -> np.ndarray:
    p = 1.0 / np.arange(start + 1, n + 1, dtype=np.float64) ** s
    c = np.cumsum(p)
    return c / c[-1]


class Library:
    """Everything about the synthetic library that follows from the spec: the vocabulary, the
    mixture the vectors come from, each file's place, kind and topic."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.root = spec["root"]
        seed, dims, n = spec["seed"], spec["dims"], spec["rows"]
        self.dims = dims
        self.rows = n
        self.n_files = n // PER_FILE_PASSAGES
        self.vocab = np.array(vocabulary(spec["vocab"], seed), dtype=object)
        self.cdf = zipf_cdf(spec["vocab"], spec["zipf"])
        rng = np.random.default_rng([seed, 2])
        k = spec["clusters"]
        self.centres = rng.standard_normal((k, LATENT))
        w = rng.gamma(2.0, size=k)
        self.weights = w / w.sum()
        # a projection that keeps norms (on average), and noise of spec["noise"] times the
        # signal's norm, whatever the width
        self.proj = (np.random.default_rng([seed, 3, dims]).standard_normal((LATENT, dims))
                     / np.sqrt(dims)).astype(np.float32)
        signal = np.sqrt(LATENT * (1 + FILE_SPREAD ** 2 + PASSAGE_SPREAD ** 2))
        self.noise_std = np.float32(spec["noise"] * signal / np.sqrt(dims))
        frng = np.random.default_rng([seed, 4])
        self.file_kind = frng.integers(0, len(KINDS), self.n_files).astype(np.int8)
        self.file_cluster = frng.choice(k, self.n_files, p=self.weights).astype(np.int32)

    def folder_of(self, i: int) -> str:
        return f"{self.root}/f{i % FOLDERS:02d}"

    def file_dir(self, i: int) -> str:
        return f"{self.folder_of(i)}/g{(i // FOLDERS) % SUBFOLDERS:02d}/d{i:07d}"

    def file_path(self, i: int) -> str:
        kind = KINDS[self.file_kind[i]]
        return f"{self.file_dir(i)}/doc-{i:07d}.{EXTS[kind]}"

    def project(self, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = latent.astype(np.float32) @ self.proj
        x += rng.standard_normal(x.shape, dtype=np.float32) * self.noise_std
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def batch(self, f0: int, f1: int) -> dict:
        """Files f0..f1-1 and their passages, as columns."""
        rng = np.random.default_rng([self.spec["seed"], 5, f0])
        nf = f1 - f0
        fi = np.repeat(np.arange(f0, f1), PER_FILE_PASSAGES)
        ordinal = np.tile(np.arange(PER_FILE_PASSAGES, dtype=np.int32), nf)
        rows = len(fi)
        file_off = rng.standard_normal((nf, LATENT)) * FILE_SPREAD
        latent = (self.centres[self.file_cluster[fi]] + np.repeat(file_off, PER_FILE_PASSAGES, 0)
                  + rng.standard_normal((rows, LATENT)) * PASSAGE_SPREAD)
        vectors = self.project(latent, rng)
        lo, hi = self.spec["words"] // 2, self.spec["words"] * 3 // 2
        lengths = rng.integers(lo, hi + 1, rows)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        word_ids = np.searchsorted(self.cdf, rng.random(int(offsets[-1]))).astype(np.int32)
        words = self.vocab[word_ids]
        texts = [" ".join(words[offsets[j]:offsets[j + 1]]) for j in range(rows)]
        chars = np.fromiter((len(t) for t in texts), np.int64, rows)
        per_file = chars.reshape(nf, PER_FILE_PASSAGES) + 1
        start = (np.cumsum(per_file, axis=1) - per_file).reshape(-1)
        lines = (chars + 79) // 80
        lf = lines.reshape(nf, PER_FILE_PASSAGES)
        line_start = (np.cumsum(lf, axis=1) - lf).reshape(-1) + 1
        return {"fi": fi, "ordinal": ordinal, "vectors": vectors, "texts": texts,
                "word_ids": word_ids, "offsets": offsets, "lengths": lengths, "chars": chars,
                "start": start, "line_start": line_start, "line_end": line_start + lines - 1}

    def queries(self, n: int) -> dict:
        """n queries: a vector (a perturbed held-out point), 1-3 Zipf words (skipping the
        commonest), a folder and a file to filter by."""
        rng = np.random.default_rng([self.spec["seed"], 6])
        c = rng.choice(len(self.weights), n, p=self.weights)
        latent = (self.centres[c] + rng.standard_normal((n, LATENT))
                  * np.sqrt(FILE_SPREAD ** 2 + PASSAGE_SPREAD ** 2 + QUERY_PERTURB ** 2))
        vectors = self.project(latent, rng)
        qcdf = zipf_cdf(self.spec["vocab"], self.spec["zipf"], QUERY_MIN_RANK)
        words = []
        for _ in range(n):
            ids = QUERY_MIN_RANK + np.searchsorted(qcdf, rng.random(int(rng.integers(1, 4))))
            words.append(sorted({int(x) for x in ids}))
        return {"vectors": vectors, "words": words,
                "text": [" ".join(self.vocab[w]) for w in words],
                "folder": rng.integers(0, FOLDERS, n).tolist(),
                "file": rng.integers(0, self.n_files, n).tolist()}


def chunk_table(lib: Library, b: dict):
    import pyarrow as pa

    from desktop.index.store import chunk_schema, file_id_for

    fi = b["fi"]
    files = range(int(fi[0]), int(fi[-1]) + 1)
    paths = {i: lib.file_path(i) for i in files}
    ids = {i: file_id_for(p) for i, p in paths.items()}
    hashes = {i: file_hash(lib, i) for i in files}
    kinds = [KINDS[k] for k in lib.file_kind[fi]]
    pdf = lib.file_kind[fi] == KINDS.index("pdf")
    page = np.where(pdf, b["ordinal"] // 4 + 1, 0).astype(np.int32)
    rows = len(fi)
    flat = pa.array(b["vectors"].reshape(-1), type=pa.float32())
    cols = {
        "id": pa.array([f"{ids[i]}:{hashes[i][:12]}:{o}"
                        for i, o in zip(fi.tolist(), b["ordinal"].tolist(), strict=True)]),
        "file_id": pa.array([ids[i] for i in fi.tolist()]),
        "hash": pa.array([hashes[i] for i in fi.tolist()]),
        "path": pa.array([paths[i] for i in fi.tolist()]),
        "kind": pa.array(kinds),
        "ordinal": pa.array(b["ordinal"], pa.int32()),
        "page": pa.array(page, pa.int32(), mask=~pdf),
        "start": pa.array(b["start"].astype(np.int32)),
        "end": pa.array((b["start"] + b["chars"]).astype(np.int32)),
        "line_start": pa.array(b["line_start"].astype(np.int32)),
        "line_end": pa.array(b["line_end"].astype(np.int32)),
        "n_tokens": pa.array((b["lengths"] * 13 // 10).astype(np.int32)),
        "text": pa.array(b["texts"], pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, lib.dims),
    }
    schema = chunk_schema(lib.dims)
    assert rows == len(cols["id"])
    return pa.Table.from_arrays([cols[n] for n in schema.names], schema=schema)


def file_hash(lib: Library, i: int) -> str:
    return hashlib.blake2b(f"{lib.spec['seed']}:{i}".encode(), digest_size=16).hexdigest()


def file_rows(lib: Library, b: dict, now: float) -> list:
    from desktop.index.store import FileRow, file_id_for

    nf = len(b["fi"]) // PER_FILE_PASSAGES
    f0 = int(b["fi"][0])
    size = b["chars"].reshape(nf, PER_FILE_PASSAGES).sum(axis=1) + PER_FILE_PASSAGES
    tokens = (b["lengths"] * 13 // 10).reshape(nf, PER_FILE_PASSAGES).sum(axis=1)
    out = []
    for j in range(nf):
        i = f0 + j
        path = lib.file_path(i)
        out.append(FileRow(file_id=file_id_for(path), path=path, root=lib.root,
                           kind=KINDS[lib.file_kind[i]], size=int(size[j]),
                           mtime_ns=1_700_000_000_000_000_000 + i * 1_000_000_000,
                           hash=file_hash(lib, i), status="ok", reason="",
                           n_chunks=PER_FILE_PASSAGES, n_tokens=int(tokens[j]),
                           sig="bench/scale", indexed_at=now))
    return out


# -- ground truth, kept up to date batch by batch --------------------------------------------

class Truth:
    """Exact top-k (X @ q) per query and filter, and per query and filter how many passages
    hold at least one of its words, over every batch written."""

    def __init__(self, lib: Library, plan: dict, k: int):
        self.lib = lib
        self.k = k
        self.q = plan["vectors"]
        n = len(self.q)
        self.qfolder = np.array(plan["folder"])
        self.qfile = np.array(plan["file"])
        self.words = plan["words"]
        self.all_words = np.array(sorted({w for ws in self.words for w in ws}), np.int32)
        self.best = {f: np.full((n, k), -np.inf, np.float32) for f in FILTERS}
        self.rows = {f: np.full((n, k), -1, np.int64) for f in FILTERS}
        self.matching = {f: np.zeros(n, np.int64) for f in FILTERS}
        self.starts: dict[int, int] = {}  # row -> start, only for rows in some top-k

    def add(self, r0: int, b: dict) -> None:
        fi = b["fi"]
        kind = self.lib.file_kind[fi]
        folder = fi % FOLDERS
        scores = b["vectors"] @ self.q.T  # (rows, queries)
        masks = {"none": None, "type": (kind == KINDS.index("pdf"))[:, None],
                 "folder": folder[:, None] == self.qfolder[None, :],
                 "file": fi[:, None] == self.qfile[None, :]}
        for f, m in masks.items():
            s = scores if m is None else np.where(m, scores, -np.inf)
            kk = min(self.k, len(s))
            top = np.argpartition(-s, kk - 1, axis=0)[:kk]  # (kk, queries)
            cand_s = np.concatenate([self.best[f], np.take_along_axis(s, top, 0).T], axis=1)
            cand_r = np.concatenate([self.rows[f], top.T + r0], axis=1)
            keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :self.k]
            self.best[f] = np.take_along_axis(cand_s, keep, 1)
            self.rows[f] = np.take_along_axis(cand_r, keep, 1)
        for r in np.unique(np.concatenate([self.rows[f].reshape(-1) for f in FILTERS])):
            if r0 <= r < r0 + len(fi):
                self.starts[int(r)] = int(b["start"][r - r0])
        # keyword: which passages hold any of each query's words
        ids = b["word_ids"]
        sel = np.isin(ids, self.all_words)
        pos_row = np.repeat(np.arange(len(fi)), b["lengths"])[sel]
        pos_word = ids[sel]
        for qi, ws in enumerate(self.words):
            hit = np.unique(pos_row[np.isin(pos_word, ws)])
            self.matching["none"][qi] += len(hit)
            self.matching["type"][qi] += int(np.sum(kind[hit] == KINDS.index("pdf")))
            self.matching["folder"][qi] += int(np.sum(folder[hit] == self.qfolder[qi]))
            self.matching["file"][qi] += int(np.sum(fi[hit] == self.qfile[qi]))

    def to_json(self) -> dict:
        def key(r: int) -> list:
            return [self.lib.file_path(r // PER_FILE_PASSAGES), self.starts[r]]

        return {
            "topk": {f: [[key(int(r)) for r, s in zip(rr, ss, strict=True) if np.isfinite(s)]
                         for rr, ss in zip(self.rows[f], self.best[f], strict=True)]
                     for f in FILTERS},
            "keyword_matching": {f: self.matching[f].tolist() for f in FILTERS},
        }


# -- the three phases, each in a process of its own (its own peak RSS) ------------------------

def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1 << 20) if sys.platform == "darwin" else r / 1024, 1)


def dir_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def open_store(spec: dict, db: Path):
    from desktop.index.store import Store

    return Store(db, f"bench{spec['dims']}", spec["dims"])


def phase_write(spec: dict, size_dir: Path) -> dict:
    db = size_dir / "db"
    shutil.rmtree(db, ignore_errors=True)
    lib = Library(spec)
    n_plan = spec["warmup"] + spec["queries"]
    plan = lib.queries(n_plan)
    np.save(size_dir / "query-vectors.npy", plan["vectors"])
    (size_dir / "plan.json").write_text(json.dumps({k: v for k, v in plan.items()
                                                    if k != "vectors"}))
    truth = Truth(lib, {k: v[spec["warmup"]:] for k, v in plan.items()}, spec["k"])
    store = open_store(spec, db)
    files_per_batch = max(1, spec["batch"] // PER_FILE_PASSAGES)
    gen_s = add_s = upsert_s = write_s = truth_s = fts_s = 0.0
    batches = 0
    t_all = time.perf_counter()
    for f0 in range(0, lib.n_files, files_per_batch):
        f1 = min(lib.n_files, f0 + files_per_batch)
        t = time.perf_counter()
        b = lib.batch(f0, f1)
        table = chunk_table(lib, b)
        rows = file_rows(lib, b, time.time())
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        if spec["via"] == "write":
            store.write(table, rows)  # also deletes other versions of these files (none)
            write_s += time.perf_counter() - t
        else:
            store.chunks.add(table)
            add_s += time.perf_counter() - t
            if batches == 0:  # as Store.write does: keyword search fast from the first batch
                t = time.perf_counter()
                store.ensure_fts()
                fts_s = time.perf_counter() - t
            t = time.perf_counter()
            store._upsert_files(rows)
            upsert_s += time.perf_counter() - t
        t = time.perf_counter()
        truth.add(f0 * PER_FILE_PASSAGES, b)
        truth_s += time.perf_counter() - t
        batches += 1
        done = f1 * PER_FILE_PASSAGES
        print(f"    wrote {done:,}/{lib.rows:,} passages ({time.perf_counter() - t_all:.0f} s)",
              file=sys.stderr)
        del b, table
    (size_dir / "truth.json").write_text(json.dumps(truth.to_json()))
    assert store.count_chunks() == lib.n_files * PER_FILE_PASSAGES
    store_s = add_s + upsert_s + write_s
    return {"rows": lib.n_files * PER_FILE_PASSAGES, "files": lib.n_files, "batches": batches,
            "write_s": round(store_s, 3), "add_s": round(add_s, 3),
            "upsert_files_s": round(upsert_s, 3), "store_write_s": round(write_s, 3),
            "fts_first_batch_s": round(fts_s, 3), "generate_s": round(gen_s, 2),
            "truth_s": round(truth_s, 2), "disk_bytes": dir_bytes(db),
            "peak_rss_mb": peak_rss_mb()}


def index_info(store) -> list[dict]:
    out = []
    for ix in store.chunks.list_indices():
        name = getattr(ix, "name", str(ix))
        d = {"table": "chunks", "name": name, "type": str(getattr(ix, "index_type", "")),
             "columns": list(getattr(ix, "columns", []))}
        try:
            st = store.chunks.index_stats(name)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            st, d["stats_error"] = None, str(exc)
        if st is not None:
            for f in ("num_indexed_rows", "num_unindexed_rows", "distance_type", "num_indices"):
                if getattr(st, f, None) is not None:
                    d[f] = getattr(st, f)
        out.append(d)
    for ix in store.files.list_indices():
        out.append({"table": "files", "name": getattr(ix, "name", str(ix)),
                    "type": str(getattr(ix, "index_type", "")),
                    "columns": list(getattr(ix, "columns", []))})
    return out


def phase_index(spec: dict, size_dir: Path) -> dict:
    db = size_dir / "db"
    store = open_store(spec, db)
    t = time.perf_counter()
    store.optimize()
    optimize_s = time.perf_counter() - t
    rss = peak_rss_mb()
    disk = dir_bytes(db)
    info = index_info(store)
    # what the latest version alone takes (Store.optimize keeps a minute of older versions):
    # optimize again with nothing new, dropping every older version
    t = time.perf_counter()
    with warnings.catch_warnings():  # (that it drops versions others may read: none here)
        warnings.simplefilter("ignore", UserWarning)
        for table in (store.chunks, store.files):
            table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
    again_s = time.perf_counter() - t
    return {"optimize_s": round(optimize_s, 3), "peak_rss_mb": rss, "disk_bytes": disk,
            "disk_latest_bytes": dir_bytes(db), "optimize_again_s": round(again_s, 3),
            "indexes": info}


def phase_query(spec: dict, size_dir: Path) -> dict:
    from desktop.index.store import NOTHING
    from desktop.search.query import Filters
    from desktop.search.rank import search_vector

    t = time.perf_counter()
    store = open_store(spec, size_dir / "db")
    open_s = time.perf_counter() - t
    lib = Library(spec)
    vectors = np.load(size_dir / "query-vectors.npy")
    plan = json.loads((size_dir / "plan.json").read_text())
    truth = json.loads((size_dir / "truth.json").read_text())
    k, warm = spec["k"], spec["warmup"]
    per_file = spec["per_file"] or None

    def filters(f: str, qi: int) -> Filters:
        if f == "folder":
            return Filters(folder=lib.folder_of(plan["folder"][qi]))
        if f == "type":
            return Filters(kinds=("pdf",))
        if f == "file":
            return Filters(folder=lib.file_dir(plan["file"][qi]))
        return Filters()

    def run(mode: str, f: str, qi: int, pf: int | None):
        return search_vector(store, None if mode == "keyword" else vectors[qi],
                             plan["text"][qi], mode=mode, k=k, per_file=pf,
                             filters=filters(f, qi))

    exist = {}  # passages each filter leaves, per query (the store's own count)
    for f in FILTERS:
        exist[f] = []
        for qi in range(warm, len(vectors)):
            where = filters(f, qi).where(store)
            exist[f].append(0 if where == NOTHING else store.count_chunks(where))

    latency: dict = {}
    for mode in MODES:
        latency[mode] = {}
        for f in FILTERS:
            for qi in range(warm):
                run(mode, f, qi, per_file)
            ms = []
            for qi in range(warm, len(vectors)):
                t = time.perf_counter()
                run(mode, f, qi, per_file)
                ms.append((time.perf_counter() - t) * 1000)
            ms.sort()
            latency[mode][f] = {"p50": round(statistics.median(ms), 2),
                                "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2),
                                "max": round(ms[-1], 2)}
        print(f"    {mode}: " + ", ".join(f"{f} p50 {v['p50']:.1f} ms"
                                          for f, v in latency[mode].items()), file=sys.stderr)

    # correctness: k results a query, no per-file cap; recall against the exact top-k
    checks: dict = {}
    for mode in MODES:
        checks[mode] = {}
        for f in FILTERS:
            short = over = outside = 0
            recall = []
            for j, qi in enumerate(range(warm, len(vectors))):
                hits = run(mode, f, qi, None)
                if mode == "keyword":
                    expected = min(k, truth["keyword_matching"][f][j])
                else:
                    expected = min(k, exist[f][j])
                short += len(hits) < expected
                over += len(hits) > expected
                flt = filters(f, qi)
                outside += sum(1 for h in hits
                               if (flt.folder and not h.path.startswith(flt.folder + "/"))
                               or (flt.kinds and h.kind not in flt.kinds))
                if mode == "semantic":
                    want = {tuple(x) for x in truth["topk"][f][j]}
                    got = {(h.path, h.start) for h in hits}
                    if want:
                        recall.append(len(want & got) / len(want))
            checks[mode][f] = {"queries": len(vectors) - warm, "short": short, "over": over,
                               "outside_filter": outside}
            if recall:
                checks[mode][f]["recall_at_k"] = round(statistics.fmean(recall), 4)
                checks[mode][f]["recall_min"] = round(min(recall), 4)

    return {"open_s": round(open_s, 3), "latency_ms": latency, "checks": checks,
            "exist_mean": {f: round(statistics.fmean(v), 1) for f, v in exist.items()},
            "keyword_matching_mean": {f: round(statistics.fmean(v), 1)
                                      for f, v in truth["keyword_matching"].items()},
            "peak_rss_mb": peak_rss_mb()}


def make_tree(store, root: str) -> int:
    """The library's files on disk, as the files table records them: sparse files of the
    recorded size, with the recorded mtime (so a re-scan finds every one unchanged)."""
    shutil.rmtree(root, ignore_errors=True)
    n = 0
    for row in store.file_rows().values():
        os.makedirs(os.path.dirname(row.path), exist_ok=True)
        with open(row.path, "wb") as fh:
            fh.truncate(row.size)
        os.utime(row.path, ns=(row.mtime_ns, row.mtime_ns))
        n += 1
    return n


def phase_book(spec: dict, size_dir: Path) -> dict:
    """The bookkeeping that reads whole tables, on the clean store with its files on disk:
    the store's file rows, folder counts and orphan purge, the engine's status (with each
    folder's pending count: a stat of every file) and the sync planner of a full re-scan
    (Indexer.plan: every file stat'ed and compared with its row)."""
    from desktop.engine import Engine
    from desktop.index.indexer import Indexer

    store = open_store(spec, size_dir / "db")
    root = spec["root"]
    t = time.perf_counter()
    files = make_tree(store, root)
    book: dict = {"files": files, "tree_s": round(time.perf_counter() - t, 2)}

    def timed(name: str, fn):
        t = time.perf_counter()
        res = fn()
        book[name] = {"s": round(time.perf_counter() - t, 4)}
        return res

    timed("file_rows", store.file_rows)
    timed("folder_counts", store.folder_counts)
    removed = timed("purge_orphans", store.purge_orphans)
    assert removed == 0, removed
    # A real engine whose library is this folder, with the bench store in place of the
    # model's (the bench tables have a key of their own); the starter model is loaded only
    # for the planner's passage settings, never to embed.
    engine = Engine(size_dir / "engine")
    engine._store = store
    engine.state.add_folder(root)
    status = timed("status", engine.status)
    folder = status["folders"][0]
    assert folder["files_indexed"] == files and folder["pending"] == 0, folder
    timed("engine_folder_counts", engine.folder_counts)
    indexer = Indexer(store, engine.embedder)
    indexer.passage_version = "bench/scale"  # the passage version the bench rows carry
    todo, gone, problems, unchanged, _ = timed(
        "plan", lambda: indexer.plan([root], library=[root]))
    assert (len(todo), len(gone), len(problems), unchanged) == (0, 0, 0, files)
    engine.close()
    book["peak_rss_mb"] = peak_rss_mb()
    shutil.rmtree(root, ignore_errors=True)
    return book


PHASES = {"write": phase_write, "index": phase_index, "query": phase_query, "book": phase_book}


def child(phase: str, size_dir: Path) -> int:
    spec = json.loads((size_dir / "spec.json").read_text())
    t = time.perf_counter()
    out = PHASES[phase](spec, size_dir)
    out["store_sha256"] = store_version()["store_sha256"]  # (in case it changed mid-run)
    out["phase_s"] = round(time.perf_counter() - t, 2)
    (size_dir / f"{phase}.json").write_text(json.dumps(out, indent=2))
    return 0


def run_phase(phase: str, size_dir: Path) -> dict:
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", phase,
                    "--dir", str(size_dir)], check=True, cwd=ROOT)
    return json.loads((size_dir / f"{phase}.json").read_text())


# -- the run -------------------------------------------------------------------------------

def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        d, _, n = part.partition(":")
        n = n.lower().replace("_", "")
        mult = 1_000_000 if n.endswith("m") else 1000 if n.endswith("k") else 1
        out.append((int(d), int(float(n.rstrip("mk")) * mult)))
    return out


def store_version() -> dict:
    """What decides the indexes and the search: a digest of the store's, the index policy's
    and the ranking's source, and the policy's constants (those that exist)."""
    import importlib

    digest = hashlib.sha256()
    consts: dict = {}
    for name in ("desktop.index.store", "desktop.index.indexes", "desktop.search.rank"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        digest.update(Path(mod.__file__).read_bytes())
        consts.update({n: getattr(mod, n) for n in dir(mod)
                       if n.isupper() and isinstance(getattr(mod, n), (int, float))
                       and any(w in n for w in ("INDEX", "NPROBE", "REFINE", "EXACT",
                                                "PARTITION", "GROWTH", "DELTA"))})
    return {"store_sha256": digest.hexdigest()[:12], "constants": consts}


def environment() -> dict:
    import lancedb
    import pyarrow

    try:
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            head = (ROOT / ".git" / head[5:]).read_text().strip()
    except OSError:
        head = None
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return {"python": platform.python_version(), "lancedb": lancedb.__version__,
            "pyarrow": pyarrow.__version__, "numpy": np.__version__, "cpus": os.cpu_count(),
            "mem_gib": mem, "LANCE_CPU_THREADS": os.environ.get("LANCE_CPU_THREADS"),
            "git_head": head[:12] if head else None, **store_version()}


def mb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def secs(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"


def size_label(r: dict) -> str:
    n = r["spec"]["rows"]
    count = (f"{n // 1_000_000}M" if n % 1_000_000 == 0 else
             f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}")
    return f"{count} × {r['spec']['dims']}"


def index_label(r: dict) -> str:
    parts = []
    for ix in r["index"]["indexes"]:
        t = ix["type"].replace("IndexType.", "")
        cols = ",".join(ix["columns"])
        extra = ""
        if ix.get("num_unindexed_rows"):
            extra = f" ({ix['num_unindexed_rows']:,} unindexed)"
        parts.append(f"{'' if ix['table'] == 'chunks' else 'files.'}{cols}: {t}{extra}")
    return "; ".join(parts) or "none"


def print_tables(res: dict) -> None:
    env = res["env"]
    consts = ", ".join(f"{k}={v}" for k, v in env["constants"].items()) or "no index constants"
    print(f"\n`{res['command']}` (lancedb {env['lancedb']}, {env['cpus']} CPUs, "
          f"{env['mem_gib']} GiB; store {env['store_sha256']}: {consts}; "
          f"load average {res['load_avg_before'][0]:.1f} before, "
          f"{res['load_avg_after'][0]:.1f} after; script {res['script_s']:.0f} s)\n")
    changed = sorted({ph.get("store_sha256") for r in res["sizes"]
                      for ph in (r["write"], r["index"], r["query"])} - {env["store_sha256"]})
    if changed:
        print(f"**The store's code changed during the run** (also measured: {changed}).\n")
    print("| passages × dims | files | write | index build (FTS on batch 1 + optimize) | "
          "indexes on the passages | peak RSS write / build / query | disk (latest version) | "
          "recall@10 none / folder / type / file |")
    print("|---|---|---|---|---|---|---|---|")
    for r in res["sizes"]:
        w, ix, q = r["write"], r["index"], r["query"]
        build = w["fts_first_batch_s"] + ix["optimize_s"]
        rec = " / ".join(f"{q['checks']['semantic'][f].get('recall_at_k', float('nan')):.3f}"
                         for f in FILTERS)
        print(f"| {size_label(r)} | {w['files']:,} | {secs(w['write_s'])} | {secs(build)} "
              f"({secs(w['fts_first_batch_s'])} + {secs(ix['optimize_s'])}) | {index_label(r)} | "
              f"{w['peak_rss_mb']:,.0f} / {ix['peak_rss_mb']:,.0f} / {q['peak_rss_mb']:,.0f} MB "
              f"| {mb(ix['disk_bytes'])} ({mb(ix['disk_latest_bytes'])}) | {rec} |")
    print("\nQuery latency p50 / p95 in ms (search_vector, k=10, per_file="
          f"{res['spec']['per_file'] or 'None'}, {res['spec']['queries']} queries after "
          f"{res['spec']['warmup']} warm-ups; × = p50 against no filter) and result counts "
          f"(k=10, no per-file cap: queries returning fewer than exist / more / any passage "
          f"outside the filter):\n")
    print("| passages × dims | mode | no filter | folder (2%) | type pdf (20%) | one file | "
          "fewer / more / outside |")
    print("|---|---|---|---|---|---|---|")
    for r in res["sizes"]:
        q = r["query"]
        for mode in MODES:
            lat = q["latency_ms"][mode]
            base = lat["none"]["p50"]
            cells = []
            for f in FILTERS:
                c = f"{lat[f]['p50']:.1f} / {lat[f]['p95']:.1f}"
                if f != "none" and base:
                    c += f" ({lat[f]['p50'] / base:.1f}×)"
                cells.append(c)
            ch = q["checks"][mode]
            bad = [sum(ch[f][x] for f in FILTERS) for x in ("short", "over", "outside_filter")]
            total = sum(ch[f]["queries"] for f in FILTERS)
            print(f"| {size_label(r)} | {mode} | {' | '.join(cells)} | "
                  f"{bad[0]} / {bad[1]} / {bad[2]} of {total} |")
    print("\nBookkeeping on the clean store, its files on disk (each called once):\n")
    print("| passages × dims | files | file_rows() | folder_counts() | purge_orphans() | "
          "status | sync planner (full re-scan) | store open |")
    print("|---|---|---|---|---|---|---|---|")
    for r in res["sizes"]:
        b = r["query"]["bookkeeping"]

        def ms(name: str, b: dict = b) -> str:
            return f"{b[name]['s'] * 1000:.0f} ms"

        print(f"| {size_label(r)} | {b['files']:,} | {ms('file_rows')} | {ms('folder_counts')}"
              f" | {ms('purge_orphans')} | {ms('status')} | {ms('plan')} | "
              f"{r['query']['open_s'] * 1000:.0f} ms |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES,
                    help=f"DIMS:PASSAGES,... (k and M allowed; default {DEFAULT_SIZES})")
    ap.add_argument("--full", action="store_true", help=f"add {FULL_SIZES}")
    ap.add_argument("--queries", type=int, default=50, help="timed queries per mode and filter")
    ap.add_argument("--warmup", type=int, default=5, help="untimed queries before them")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--per-file", type=int, default=3,
                    help="passages per file in the timed queries (the app's default; 0: no cap)")
    ap.add_argument("--batch", type=int, default=50_000, help="passages per write")
    ap.add_argument("--via", choices=("add", "write"), default="add",
                    help="add: chunks.add + _upsert_files (+ the FTS index after batch 1, as "
                         "write does); write: Store.write (its delete of replaced versions too)")
    ap.add_argument("--words", type=int, default=150,
                    help="mean words a passage (uniform from half to 1.5 times)")
    ap.add_argument("--vocab", type=int, default=30_000)
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of word frequencies")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.5,
                    help="noise added to the projected vectors, relative to the signal's norm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true",
                    help="query the stores of an earlier run again (same spec and store code)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--child", choices=tuple(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.dir)

    sizes = parse_sizes(args.sizes) + (parse_sizes(FULL_SIZES) if args.full else [])
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    env = environment()
    common = {"queries": args.queries, "warmup": args.warmup, "k": args.k,
              "per_file": args.per_file, "batch": args.batch, "via": args.via,
              "words": args.words, "vocab": args.vocab, "zipf": args.zipf,
              "clusters": args.clusters, "noise": args.noise, "seed": args.seed}
    results: dict = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "env": env, "spec": common, "sizes": []}
    print(f"store {env['store_sha256']}, constants {env['constants']}", file=sys.stderr)
    for dims, n in sizes:
        n -= n % PER_FILE_PASSAGES
        size_dir = args.out / "scale" / f"{dims}x{n}"
        spec = {**common, "dims": dims, "rows": n,
                "root": str((size_dir / BENCH_ROOT).resolve())}
        size_dir.mkdir(parents=True, exist_ok=True)
        kept = size_dir / "spec.json"
        stamp = {**spec, "store": env["store_sha256"]}
        reuse = (args.reuse and kept.exists() and json.loads(kept.read_text()) == stamp
                 and (size_dir / "write.json").exists() and (size_dir / "index.json").exists())
        print(f"{n:,} passages × {dims}{' (reusing the store)' if reuse else ''}",
              file=sys.stderr)
        t = time.perf_counter()
        if reuse:
            w = json.loads((size_dir / "write.json").read_text())
            ix = json.loads((size_dir / "index.json").read_text())
        else:
            kept.write_text(json.dumps(stamp))
            w = run_phase("write", size_dir)
            print(f"  write {w['write_s']:.1f} s (+ generation {w['generate_s']:.1f} s)",
                  file=sys.stderr)
            ix = run_phase("index", size_dir)
            print(f"  optimize {ix['optimize_s']:.1f} s; {ix['indexes']}", file=sys.stderr)
        q = run_phase("query", size_dir)
        q["bookkeeping"] = run_phase("book", size_dir)
        results["sizes"].append({"spec": spec, "reused": reuse, "write": w, "index": ix,
                                 "query": q, "size_s": round(time.perf_counter() - t, 1)})
        print(f"  done in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    results["load_avg_before"] = [round(x, 2) for x in load_before]
    results["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["script_s"] = round(time.perf_counter() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale-results.json").write_text(json.dumps(results, indent=2))
    print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
