"""Time from saving a small file to finding it by search, with live sync: the goal is p50 < 2 s.

A Syncer (what `semdex watch` and the app run) keeps a folder of ~200 small files in sync in a
background thread, with the starter model. Once it is idle, each round saves a file holding a
made-up word no other file has, notes the time, and searches for that word every ~20 ms until
the file is the first hit (15 s at most). Two series: new files, and edits of existing files
(each edit adds a sentence with the word to a file that did not have it).

Searches run as a reader would: through a second Engine on the same data dir. A long-lived
second Engine keeps the LanceDB tables it opened and may not see later writes (LanceDB checks
for other writers' versions only when asked to); `--reader fresh` opens a new Engine for every
search, as each `semdex search` command does, and `--reader writer` searches through the
Syncer's own Engine (one process for window and sync). Keyword search is used by default (no
query embedding in the loop); `--mode semantic` searches for a distinctive sentence instead.

The latency includes the watcher's debounce (SyncSettings.quiet, reported) and is split into:
save to sync start (event delivery + debounce), the sync itself, and sync end to visible.

Usage:
    python bench/save_latency.py [--files 200] [--rounds 30] [--reader fresh] [--mode keyword]

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
from desktop.embedder import EmbedderSettings, default_threads  # noqa: E402
from desktop.engine import Engine  # noqa: E402
from desktop.indexer import Progress  # noqa: E402
from desktop.sync import Syncer, SyncSettings  # noqa: E402

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
    def __init__(self, kind: str, data_dir: Path, writer: Engine, args: argparse.Namespace,
                 settings: EmbedderSettings):
        self.kind, self.data_dir, self.args, self.settings = kind, data_dir, args, settings
        self.writer = writer
        self.engine = None if kind == "fresh" else (
            writer if kind == "writer" else Engine(data_dir, args.model, args.family, settings))
        self.fresh_open_s: list[float] = []

    def top(self, query: str, mode: str) -> str | None:
        if self.kind == "fresh":
            t = time.perf_counter()
            engine = Engine(self.data_dir, self.args.model, self.args.family, self.settings)
            self.fresh_open_s.append(time.perf_counter() - t)
            if mode != "keyword":  # the loaded model is borrowed: loading it per search would
                engine._embedder = self.writer.embedder  # be a model-load benchmark
        else:
            engine = self.engine
        hits = engine.search(query, mode=mode, k=3)
        return hits[0].path if hits else None


def wait_idle(syncer: Syncer, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not syncer.idle.wait(0.05):
        if not thread.is_alive():
            raise RuntimeError("the Syncer stopped")
        if time.monotonic() > deadline:
            raise TimeoutError("the Syncer did not become idle")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200, help="files in the folder at start")
    ap.add_argument("--rounds", type=int, default=30, help="saves per series")
    ap.add_argument("--reader", choices=["fresh", "second", "writer"], default="fresh",
                    help="fresh: a new Engine per search (like `semdex search`); second: one "
                         "long-lived second Engine; writer: the Syncer's own Engine")
    ap.add_argument("--mode", choices=["keyword", "semantic", "hybrid"], default="keyword")
    ap.add_argument("--quiet", type=float, default=None,
                    help="debounce in seconds (default: SyncSettings' own)")
    ap.add_argument("--poll", type=float, default=0.02, help="seconds between searches")
    ap.add_argument("--timeout", type=float, default=15.0, help="give up on a save after this")
    ap.add_argument("--gap", type=float, default=0.5, help="pause between rounds once idle")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--model", help="GGUF embedder (default: the starter model)")
    ap.add_argument("--family")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

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
    sync_settings = SyncSettings() if args.quiet is None else SyncSettings(quiet=args.quiet)
    writer = Engine(data_dir, args.model, args.family, settings)
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
          f"watched in {startup_s:.1f} s; quiet {sync_settings.quiet} s; reader {args.reader}, "
          f"{args.mode} search", file=sys.stderr)
    reader = Reader(args.reader, data_dir, writer, args, settings)

    rng = random.Random(7)
    series: dict[str, list[dict]] = {"new file": [], "edited file": []}
    inbox = tree / "inbox"
    inbox.mkdir()
    try:
        for name, done in series.items():
            for r in range(args.rounds):
                wait_idle(syncer, thread, 120)
                time.sleep(args.gap)
                wait_idle(syncer, thread, 120)
                word = made_up_word(rng)
                phrase = (f"The {word} is a {rng.choice(_ADJECTIVES)} "
                          f"{rng.choice(_MATERIALS)} {rng.choice(_OBJECTS)}")
                sentence = f"{phrase}. {rng.choice(pool) if pool else ''}"
                query = word if args.mode == "keyword" else phrase
                if name == "new file":
                    path = inbox / f"saved-{r:03d}.txt"
                    text = file_text(100_000 + r, pool, 320) + "\n" + sentence + "\n"
                else:
                    i = (r * 7) % args.files
                    path = file_path(tree, i)
                    text = file_text(i, pool, 320) + "\n" + sentence + "\n"
                t_save = time.perf_counter()
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                seen = None
                searches = 0
                while time.perf_counter() - t_save < args.timeout:
                    searches += 1
                    if reader.top(query, args.mode) == str(path):
                        seen = time.perf_counter()
                        break
                    time.sleep(args.poll)
                start, end = events.sync_after(t_save)
                row = {"latency_s": None if seen is None else seen - t_save,
                       "to_sync_start_s": None if start is None else start - t_save,
                       "sync_s": None if start is None or end is None else end - start,
                       "end_to_visible_s": None if seen is None or end is None else seen - end,
                       "searches": searches}
                done.append(row)
                lat = row["latency_s"]
                print(f"  {name} {r + 1}/{args.rounds}: "
                      + (f"{lat:.3f} s" if lat is not None else "not found") +
                      f" ({searches} searches)", file=sys.stderr)
    finally:
        cancel.set()
        thread.join(timeout=30)

    stale = None
    if args.reader == "second":
        stale = sum(1 for rows in series.values() for x in rows if x["latency_s"] is None)

    results: dict = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": writer.model.info.name, "threads": threads, "cpus": os.cpu_count(),
        "files": args.files, "quiet_s": sync_settings.quiet, "max_wait_s": sync_settings.max_wait,
        "optimize_after_idle_s": sync_settings.optimize_after_idle, "reader": args.reader,
        "mode": args.mode, "poll_s": args.poll, "timeout_s": args.timeout,
        "startup_index_s": round(startup_s, 2), "syncs": syncer.syncs, "series": {},
    }
    if reader.fresh_open_s:
        results["fresh_engine_open_ms_p50"] = round(
            statistics.median(reader.fresh_open_s) * 1000, 1)
    for name, rows in series.items():
        found = [x for x in rows if x["latency_s"] is not None]
        s: dict = {"n": len(rows), "timeouts": len(rows) - len(found), "rows": rows}
        for key in ("latency_s", "to_sync_start_s", "sync_s", "end_to_visible_s"):
            vals = [x[key] for x in found if x[key] is not None]
            if vals:
                s[key] = {"p50": statistics.median(vals), "p95": percentile(vals, 0.95),
                          "max": max(vals)}
        results["series"][name] = s
    writer.close()
    results["load_avg_before"] = [round(x, 2) for x in load_before]
    results["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["script_s"] = round(time.perf_counter() - t_start, 1)
    (args.out / "save-latency-results.json").write_text(json.dumps(results, indent=2))

    print(f"\n`{results['command']}` ({results['model']}, {threads} threads on "
          f"{results['cpus']} CPUs; {args.files} files watched; debounce quiet "
          f"{sync_settings.quiet} s; {args.mode} search through a {args.reader} reader every "
          f"{args.poll * 1000:.0f} ms; load average {load_before[0]:.1f} before, "
          f"{results['load_avg_after'][0]:.1f} after; script {results['script_s']:.0f} s)\n")
    print("| series | saves | found | p50 | p95 | max | save→sync start p50 | sync p50 | "
          "sync end→visible p50 |\n|---|---|---|---|---|---|---|---|---|")

    def ms(d: dict | None, k: str) -> str:
        return "–" if not d else f"{d[k] * 1000:.0f} ms"

    for name, s in results["series"].items():
        lat = s.get("latency_s")
        print(f"| {name} | {s['n']} | {s['n'] - s['timeouts']} | {ms(lat, 'p50')} | "
              f"{ms(lat, 'p95')} | {ms(lat, 'max')} | {ms(s.get('to_sync_start_s'), 'p50')} | "
              f"{ms(s.get('sync_s'), 'p50')} | {ms(s.get('end_to_visible_s'), 'p50')} |")
    if stale:
        print(f"\n{stale} saves never became visible to the long-lived second Engine within "
              f"{args.timeout:.0f} s.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SEMDEX_MODEL_CACHE", str(ROOT / "bench" / "out" / "models"))
    sys.exit(main())
