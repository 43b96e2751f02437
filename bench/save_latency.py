"""Time from saving a small file to finding it by search, with live sync: the goal is p50 < 2 s.

A Syncer (what `semdex watch` and the app run) keeps a folder of ~200 small files in sync in a
background thread, with the starter model. Once it is idle, each round saves a file holding a
made-up word no other file has, notes the time, and searches for that word every ~20 ms until
the file is the first hit (15 s at most). Two series: new files, and edits of existing files
(each edit adds a sentence with the word to a file that did not have it).

Who searches matters, so each reader gets its own two series:

* writer: the Syncer's own Engine (one process for window and sync);
* fresh: a new Engine for every search, as each `semdex search` command opens one (the cost of
  opening it, ~tens of ms, is part of each poll);
* second: one long-lived second Engine, opened once the folder is indexed and used as it is,
  as a window searches while another process (`semdex watch`) holds the writer lock. The store
  opens LanceDB with read_consistency_interval=0, so each of its searches reads the latest
  committed version: it sees a save as soon as the writer has committed it.

(`refresh`, a second Engine that called checkout_latest() on its tables before each search,
predates that setting and would measure the same as `second`: it is gone.) After each save of
the other readers (found or given up), a long-lived second Engine is also asked once, and the
report says in how many saves it had the file first: all of them, unless a reader that stays
open misses later writes. In semantic and hybrid modes the second Engines, like the fresh ones,
borrow the writer's loaded model, so no poll includes loading a model.

Keyword search is used by default (no query embedding in the loop; rows not yet in the
full-text index are searched too); `--mode semantic` searches for a distinctive phrase instead.
The latency includes the watcher's debounce (SyncSettings.quiet, reported); beside it are
save to sync start (event delivery + debounce), the sync's own duration (start to its "done"),
and sync start to visible (a reader may see the file before the sync reports "done").

Usage:
    python bench/save_latency.py [--files 200] [--rounds 30] [--readers writer,fresh,second]

Prints a Markdown table and writes bench/out/save-latency-results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rescan import file_path, file_text, sentence_pool  # noqa: E402
from desktop.engine import Engine  # noqa: E402
from desktop.index.indexer import Progress  # noqa: E402
from desktop.index.sync import Syncer, SyncSettings  # noqa: E402
from desktop.models.embedder import EmbedderSettings, default_threads  # noqa: E402

READERS = ("writer", "fresh", "second")
REMOVED_READERS = {  # old --readers names, with what to use now
    "refresh": "the store reads with read_consistency_interval=0, so a long-lived Engine sees "
               "later writes without checkout_latest(): use 'second', which measures the same",
}
_SYLLABLES = ("bra", "dov", "fel", "gri", "kon", "lux", "mir", "nop", "qua", "rist", "sol",
              "tev", "ulm", "vak", "wex", "yor", "zin", "plo", "stra", "ghe")
_ADJECTIVES = ("tiny", "enormous", "ancient", "folding", "humming", "glowing", "crooked", "velvet")
_MATERIALS = ("copper", "glass", "walnut", "granite", "wool", "bamboo", "porcelain", "tin")
_OBJECTS = ("lantern", "compass", "teapot", "harp", "kite", "abacus", "umbrella", "sundial")


def made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(4)) + rng.choice(("ian", "ox", "et"))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


class Events:
    """Times of the Syncer's progress reports (it calls us from its own thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, str]] = []

    def __call__(self, prog: Progress) -> None:
        with self.lock:
            self.items.append((time.perf_counter(), prog.phase))

    def sync_after(self, t: float) -> tuple[float | None, float | None]:
        """Start and end of the first sync that began after t."""
        start = end = None
        with self.lock:
            for ts, phase in self.items:
                if ts < t:
                    continue
                if start is None and phase == "scanning":
                    start = ts
                elif start is not None and phase in ("done", "cancelled"):
                    end = ts
                    break
        return start, end


class Reader:
    """Searches the way one kind of reader would."""

    def __init__(self, kind: str, writer: Engine, open_engine, mode: str):
        self.kind, self.writer, self.open_engine = kind, writer, open_engine
        self.engine = writer if kind == "writer" else None if kind == "fresh" else open_engine()
        if kind == "second":
            open_second(self.engine, writer, mode)
        self.open_s: list[float] = []

    def top(self, query: str, mode: str) -> str | None:
        engine = self.engine
        if self.kind == "fresh":
            t = time.perf_counter()
            engine = self.open_engine()
            self.open_s.append(time.perf_counter() - t)
            if mode != "keyword":  # borrow the loaded model: loading it for every search
                engine._embedder = self.writer.embedder  # would measure the model load
        hits = engine.search(query, mode=mode, k=3)
        return hits[0].path if hits else None


def open_second(engine: Engine, writer: Engine, mode: str) -> None:
    """Make a long-lived second Engine ready, as one that has been open a while is: its store
    opened, and (unless keyword search) the writer's loaded model lent to it."""
    engine.store  # noqa: B018 - opened now, not in the first poll
    if mode != "keyword":
        engine._embedder = writer.embedder


def wait_idle(syncer: Syncer, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not syncer.idle.wait(0.05):
        if not thread.is_alive():
            raise RuntimeError("the Syncer stopped")
        if time.monotonic() > deadline:
            raise TimeoutError("the Syncer did not become idle")


def stats(rows: list[dict]) -> dict:
    found = [x for x in rows if x["latency_s"] is not None]
    s: dict = {"n": len(rows), "found": len(found)}
    for key in ("latency_s", "to_sync_start_s", "sync_s", "start_to_visible_s"):
        vals = [x[key] for x in rows if x[key] is not None]
        if vals:
            s[key] = {"p50": statistics.median(vals), "p95": percentile(vals, 0.95),
                      "max": max(vals)}
    s["rows"] = rows
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200, help="files in the folder at start")
    ap.add_argument("--rounds", type=int, default=30, help="saves per series")
    ap.add_argument("--readers", default="writer,fresh,second",
                    help=f"comma-separated, of {', '.join(READERS)} (see the top of "
                         "bench/save_latency.py)")
    ap.add_argument("--mode", choices=["keyword", "semantic", "hybrid"], default="keyword",
                    help="search mode (default keyword: no query embedding in the loop)")
    ap.add_argument("--quiet", type=float, default=None,
                    help="debounce in seconds (default: SyncSettings' own)")
    ap.add_argument("--poll", type=float, default=0.02, help="seconds between searches")
    ap.add_argument("--timeout", type=float, default=15.0, help="give up on a save after this")
    ap.add_argument("--gap", type=float, default=0.5, help="pause before each save once idle")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out",
                    help="where the folder, the data dir and the results JSON go "
                         "(default bench/out)")
    ap.add_argument("--model", help="GGUF embedder (default: the starter model)")
    ap.add_argument("--family", help="override the model family recognised from the file")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for the model (default: the app's default)")
    args = ap.parse_args()
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    for r in readers:
        if r in REMOVED_READERS:
            ap.error(f"--readers: '{r}' was removed: {REMOVED_READERS[r]}")
    if not readers or any(r not in READERS for r in readers):
        ap.error(f"--readers takes a comma-separated list of {', '.join(READERS)}")

    t_start = time.perf_counter()
    load_before = os.getloadavg()
    base = args.out / "save-latency"
    tree, data_dir = base / "folder", base / "data"
    shutil.rmtree(base, ignore_errors=True)
    pool = sentence_pool()
    for i in range(args.files):
        p = file_path(tree, i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(file_text(i, pool, 320), encoding="utf-8")

    threads = args.threads or default_threads()
    settings = EmbedderSettings(threads=threads)

    def open_engine() -> Engine:
        return Engine(data_dir, args.model, args.family, settings)

    sync_settings = SyncSettings() if args.quiet is None else SyncSettings(quiet=args.quiet)
    writer = open_engine()
    writer.embedder  # noqa: B018 - loaded before the Syncer starts, as the app does
    syncer = Syncer(writer, [str(tree)], sync_settings)
    events = Events()
    cancel = threading.Event()
    thread = threading.Thread(target=syncer.run, args=(cancel, events), name="syncer",
                              daemon=True)
    t = time.perf_counter()
    thread.start()
    wait_idle(syncer, thread, 600)
    startup_s = time.perf_counter() - t
    print(f"model: {writer.model.info.name}, {threads} threads; {args.files} files indexed and "
          f"watched in {startup_s:.1f} s; quiet {sync_settings.quiet} s; {args.mode} search",
          file=sys.stderr)
    second = open_engine()  # long-lived: asked once per save, does it see every one?
    open_second(second, writer, args.mode)
    second_seen = second_asked = 0

    rng = random.Random(7)
    results: dict = {"series": {}}
    inbox = tree / "inbox"
    inbox.mkdir()
    n_new = n_edit = 0
    # Readers and series take turns round by round, so a change of load during the run
    # falls on all of them alike.
    reader_of = {kind: Reader(kind, writer, open_engine, args.mode) for kind in readers}
    rows_of: dict[tuple[str, str], list[dict]] = {
        (kind, name): [] for kind in readers for name in ("new file", "edited file")}
    try:
        for r in range(args.rounds):
            for (kind, name), rows in rows_of.items():
                reader = reader_of[kind]
                wait_idle(syncer, thread, 120)
                time.sleep(args.gap)
                wait_idle(syncer, thread, 120)
                word = made_up_word(rng)
                phrase = (f"The {word} is a {rng.choice(_ADJECTIVES)} "
                          f"{rng.choice(_MATERIALS)} {rng.choice(_OBJECTS)}")
                sentence = f"{phrase}. {rng.choice(pool) if pool else ''}"
                query = word if args.mode == "keyword" else phrase
                if name == "new file":
                    n_new += 1
                    path = inbox / f"saved-{n_new:03d}.txt"
                    text = file_text(100_000 + n_new, pool, 320)
                else:
                    i = (n_edit * 7) % args.files
                    n_edit += 1
                    path = file_path(tree, i)
                    text = file_text(i, pool, 320)
                t_save = time.perf_counter()
                with open(path, "w", encoding="utf-8") as f:
                    f.write(f"{text}\n{sentence}\n")
                seen = None
                searches = 0
                while time.perf_counter() - t_save < args.timeout:
                    searches += 1
                    if reader.top(query, args.mode) == str(path):
                        seen = time.perf_counter()
                        break
                    time.sleep(args.poll)
                saw = None
                if kind != "second":
                    hits = second.search(query, mode=args.mode, k=3)
                    saw = bool(hits) and hits[0].path == str(path)
                    second_asked += 1
                    second_seen += saw
                wait_idle(syncer, thread, 120)  # the sync may report "done" after the reader
                start, end = events.sync_after(t_save)  # could already see the file
                rows.append({
                    "latency_s": None if seen is None else seen - t_save,
                    "to_sync_start_s": None if start is None else start - t_save,
                    "sync_s": None if start is None or end is None else end - start,
                    "start_to_visible_s": None if seen is None or start is None
                    else seen - start,
                    "searches": searches, "second_engine_saw": saw})
                lat = rows[-1]["latency_s"]
                print(f"  round {r + 1}/{args.rounds}, {kind} reader, {name}: "
                      + (f"{lat:.3f} s" if lat is not None else "not found")
                      + f" ({searches} searches)", file=sys.stderr)
        for (kind, name), rows in rows_of.items():
            results["series"][f"{kind} / {name}"] = stats(rows)
        for kind, reader in reader_of.items():
            if reader.open_s:
                results[f"{kind}_engine_open_ms_p50"] = round(
                    statistics.median(reader.open_s) * 1000, 1)
    finally:
        cancel.set()
        thread.join(timeout=30)
    writer.close()

    results.update({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": writer.model.info.name, "threads": threads, "cpus": os.cpu_count(),
        "files": args.files, "quiet_s": sync_settings.quiet, "max_wait_s": sync_settings.max_wait,
        "optimize_after_idle_s": sync_settings.optimize_after_idle, "readers": readers,
        "mode": args.mode, "poll_s": args.poll, "timeout_s": args.timeout,
        "startup_index_s": round(startup_s, 2), "syncs": syncer.syncs,
        "second_engine_saw": second_seen, "second_engine_asked": second_asked,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "script_s": round(time.perf_counter() - t_start, 1),
    })
    (args.out / "save-latency-results.json").write_text(json.dumps(results, indent=2))

    print(f"\n`{results['command']}` ({results['model']}, {threads} threads on "
          f"{results['cpus']} CPUs; {args.files} files watched; debounce quiet "
          f"{sync_settings.quiet} s; {args.mode} search every {args.poll * 1000:.0f} ms; "
          f"load average {load_before[0]:.1f} before, {results['load_avg_after'][0]:.1f} after; "
          f"script {results['script_s']:.0f} s)\n")
    print("| reader / series | found | p50 | p95 | max | save→sync start p50 | "
          "sync start→done p50 | sync start→visible p50 |\n|---|---|---|---|---|---|---|---|")

    def ms(d: dict | None, k: str) -> str:
        return "–" if not d else f"{d[k] * 1000:.0f} ms"

    for name, s in results["series"].items():
        lat = s.get("latency_s")
        print(f"| {name} | {s['found']}/{s['n']} | {ms(lat, 'p50')} | {ms(lat, 'p95')} | "
              f"{ms(lat, 'max')} | {ms(s.get('to_sync_start_s'), 'p50')} | "
              f"{ms(s.get('sync_s'), 'p50')} | {ms(s.get('start_to_visible_s'), 'p50')} |")
    for kind in readers:
        if f"{kind}_engine_open_ms_p50" in results:
            print(f"\nOpening an Engine for each search ({kind} reader): "
                  f"{results[f'{kind}_engine_open_ms_p50']:.0f} ms p50.")
    if second_asked:
        print(f"\nA long-lived second Engine, asked once per save after the reader's last "
              f"search, had the file first in {second_seen} of {second_asked} saves (it reads "
              "with read_consistency_interval=0: all of them are expected).")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SEMDEX_MODEL_CACHE", str(ROOT / "bench" / "out" / "models"))
    sys.exit(main())
