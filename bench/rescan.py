"""Re-scan of 10,000 unchanged small files: the goal is under 2 s.

A tree of small text and Markdown files (200 B to 4 KB of English sentences, log-normal sizes
around a few hundred bytes, in 100 folders two levels deep) is written once and kept under
bench/out/rescan/. It is indexed once with the starter model (the first index is kept too, with
its timing; --reindex builds it again). Then, with the model loaded:

* a full re-index of the unchanged tree, in-process (`list(engine.index([root]))`), timed as a
  whole and per phase of the Progress stream, plus its parts called directly (scan, reading the
  files table, plan, purge_orphans, optimize);
* the same after touching N files (new mtime, same bytes) and after editing N files;
* a run scoped to one edited file without optimize: what the Syncer does after each save;
* the `semdex index ROOT` command as a subprocess on the unchanged tree (Python start-up, imports
  and model load included).

Usage:
    python bench/rescan.py [--files 10000] [--rounds 5] [--changed 10] [--reindex]

Prints a Markdown table and writes bench/out/rescan-results.json (rescan-results-N.json for a
tree of another size).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from desktop.engine import Engine  # noqa: E402
from desktop.index.indexer import Indexer  # noqa: E402
from desktop.index.scan import scan_folder  # noqa: E402
from desktop.models.embedder import EmbedderSettings, default_threads  # noqa: E402

TREE_VERSION = 1  # bump when the generated text changes: the cached tree is then rebuilt
TOPS = ["projects", "recipes", "travel", "work", "school", "letters", "health", "finance",
        "reading", "garden"]
SUBS = [str(y) for y in range(2016, 2026)]

# Everyday sentences mixed with the Python reference's prose, so the vocabulary is not only
# technical. {…} slots are filled at random.
_TEMPLATES = [
    "Remember to call {name} about the {thing} before {day}.",
    "The {thing} in the {place} needs to be replaced; {name} said it costs about {n} euros.",
    "We met {name} at the {place} on {day} and talked about the {thing} for an hour.",
    "{name} recommends soaking the beans overnight and adding {thing} only at the end.",
    "Booked the train to {city} for {day}; the return leaves at {n}:15 from platform {k}.",
    "The quarterly report is due on {day}, and {name} still needs the figures for {thing}.",
    "Water the {plant} twice a week in summer and once a week after the first frost.",
    "Chapter {k} argues that the {thing} was never as important as historians assumed.",
    "Our landlord, {name}, agreed to fix the {thing} in the {place} by the end of the month.",
    "Flight to {city} delayed by {n} minutes; the hotel kept the room until midnight.",
    "Blood pressure was normal today; the doctor wants another check in {k} weeks.",
    "Paid {n} euros for the {thing} repair, receipt filed under {place}.",
    "{name}'s lecture on {city} in the nineteenth century was the best of the term.",
    "Plant the {plant} seedlings out once the nights stay above ten degrees.",
    "Dear {name}, thank you for the {thing}; it arrived on {day} in perfect condition.",
]
_WORDS = {
    "name": "Anna Ben Chloe David Elena Farid Grace Hugo Ines Jonas Kemal Lena Marta Nils "
            "Olga Pavel Rosa Sami Tomas Ursula Vera Wim Yusuf Zoe".split(),
    "thing": "boiler invoice bicycle contract laptop roof manuscript shed passport "
             "insurance budget spreadsheet curtains telescope thesis piano".split(),
    "place": "kitchen office attic garage library cafe station basement hallway "
             "bank".split(),
    "day": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),
    "city": "Lisbon Krakow Utrecht Tallinn Porto Ghent Bologna Lyon Trieste Aarhus".split(),
    "plant": "tomato basil lavender rosemary courgette dahlia fennel sage".split(),
}


def sentence_pool() -> list[str]:
    """English sentences from the Python reference shipped with Python (no download)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a Python built without its docs: everyday sentences only
        return []
    out = set()
    for para in re.split(r"\n\s*\n", "\n".join(topics.values())):
        flat = " ".join(para.split())
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat):
            if (40 <= len(s) <= 300 and s[-1] in ".!?"
                    and sum(c.isalpha() or c == " " for c in s) > 0.9 * len(s)):
                out.add(s)
    return sorted(out)


def _everyday(rng: random.Random) -> str:
    t = rng.choice(_TEMPLATES)
    return re.sub(r"\{(\w+)\}", lambda m: str(rng.randint(2, 90)) if m[1] in ("n", "k")
                  else rng.choice(_WORDS[m[1]]), t)


def file_path(tree: Path, i: int) -> Path:
    folder = i % (len(TOPS) * len(SUBS))
    ext = ".md" if i % 10 < 3 else ".txt"
    return tree / TOPS[folder // len(SUBS)] / SUBS[folder % len(SUBS)] / f"note-{i:05d}{ext}"


def file_text(i: int, pool: list[str], median_bytes: int, lo: int = 200, hi: int = 4096,
              seed: int = 0) -> str:
    """File i's text: a title that makes it unique, then sentences up to a log-normal size."""
    rng = random.Random(f"{seed}:{i}")
    target = min(hi, max(lo, int(rng.lognormvariate(math.log(median_bytes), 0.7))))
    title = (f"{rng.choice(_WORDS['thing']).capitalize()}, "
             f"{rng.choice(_WORDS['city'])}, note {i}")
    parts = [f"# {title}\n\n" if i % 10 < 3 else f"{title}\n\n"]
    size = len(parts[0])
    n = 0
    while size < target:
        s = (rng.choice(pool) if pool and rng.random() < 0.7 else _everyday(rng))
        if size + len(s) + 1 > hi:
            if size >= lo:
                break
            s = s[: hi - size - 1]
        n += 1
        s += "\n\n" if n % rng.randint(3, 6) == 0 else " "
        parts.append(s)
        size += len(s)
    return "".join(parts).rstrip() + "\n"


def make_tree(tree: Path, files: int, median_bytes: int, seed: int = 0) -> Path:
    marker = tree / ".complete"  # hidden: never indexed
    spec = {"version": TREE_VERSION, "files": files, "median_bytes": median_bytes, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    pool = sentence_pool()
    for i in range(files):
        p = file_path(tree, i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(file_text(i, pool, median_bytes, seed=seed), encoding="utf-8")
    marker.write_text(json.dumps(spec))
    return tree


def tree_stats(tree: Path) -> dict:
    sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tree) for f in fs
             if not f.startswith(".")]
    folders = sum(1 for _ in os.walk(tree)) - 1
    return {"files": len(sizes), "folders": folders, "bytes": sum(sizes),
            "min_bytes": min(sizes), "median_bytes": int(statistics.median(sizes)),
            "max_bytes": max(sizes)}


# -- measuring -----------------------------------------------------------------------------

class StoreCalls:
    """Times the Store's whole-table operations while a run makes them (the engine's too)."""

    NAMES = ("file_rows", "purge_orphans", "optimize")

    def __init__(self, store: object):
        self.store = store
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self.count = dict.fromkeys(self.NAMES, 0)

    def _wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*a: object, **kw: object) -> object:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[name] += time.perf_counter() - t
                self.count[name] += 1
        return timed

    def __enter__(self) -> StoreCalls:
        for name in self.NAMES:
            setattr(self.store, name, self._wrap(name, getattr(self.store, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.NAMES:
            delattr(self.store, name)  # back to the class's method


def timed_index(engine: Engine, tree: Path, scope: list[str] | None = None) -> dict:
    """Wall time of one engine.index run, split at the phases of its Progress stream.

    With a scope, the run is what the Syncer does for paths the watcher saw change.
    """
    marks: dict[str, float] = {}
    last = None
    with StoreCalls(engine.store) as calls:
        t0 = time.perf_counter()
        for prog in engine.index([str(tree)], scope=scope, optimize=scope is None):
            marks.setdefault(prog.phase, time.perf_counter())
            last = prog
        end = time.perf_counter()
    assert last is not None and last.phase == "done", last
    return {
        "wall_s": end - t0,
        "setup_s": marks["scanning"] - t0,  # writer lock, folders in state.json, Indexer
        "purge_plan_s": marks["indexing"] - marks["scanning"],  # purge_orphans + plan
        "pipeline_s": marks["finishing"] - marks["indexing"],  # read, hash, embed, write
        # optimize (after a write) and the engine's bookkeeping (state.json, problems)
        "finish_s": end - marks["finishing"],
        "embed_s": last.embed_seconds,  # inside the pipeline: embedding (and passage reuse)
        **{f"{n}_s": calls.seconds[n] for n in calls.NAMES},
        "file_rows_calls": calls.count["file_rows"],
        "files_done": last.files_done, "files_unchanged": last.files_unchanged,
        "files_failed": last.files_failed, "chunks": last.chunks, "tokens": last.tokens,
    }


def repeat(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "all": [round(v, 4) for v in values]}


def first_index(engine: Engine, tree: Path) -> dict:
    t0 = time.perf_counter()
    last = None
    report = 1000
    for prog in engine.index([str(tree)]):
        last = prog
        if prog.phase == "indexing" and prog.files_done >= report:
            report += 1000
            print(f"  {prog.files_done:,}/{prog.files_total:,} files, "
                  f"{prog.tokens_per_s:,.0f} tok/s", file=sys.stderr)
    seconds = time.perf_counter() - t0
    assert last is not None and last.phase == "done", last
    return {"seconds": round(seconds, 2), "files": last.files_done,
            "failed": last.files_failed, "passages": last.chunks, "tokens": last.tokens,
            "embed_seconds": round(last.embed_seconds, 2),
            "tokens_per_s": round(last.tokens / seconds, 1),
            "when": time.strftime("%Y-%m-%d %H:%M")}


def cli_index(data_dir: Path, tree: Path, threads: int | None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "desktop.cli", "--data-dir", str(data_dir)]
    if threads:
        cmd += ["--threads", str(threads)]
    cmd += ["index", str(tree), "--json"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def touch(paths: list[Path], step: int) -> None:
    for p in paths:
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + step * 1_000_000_000))


def edit(paths: list[Path], ids: list[int], pool: list[str], median_bytes: int, tag: str
         ) -> None:
    for p, i in zip(paths, ids, strict=True):
        text = file_text(i, pool, median_bytes)
        p.write_text(f"{text}\nEdited ({tag}): {random.Random(tag).choice(pool or ['ok.'])}\n",
                     encoding="utf-8")


def fmt(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000, help="files in the tree")
    ap.add_argument("--rounds", type=int, default=5, help="measurements per row")
    ap.add_argument("--changed", type=int, default=10, help="files touched / edited per round")
    ap.add_argument("--median-bytes", type=int, default=320,
                    help="median file size (sizes are log-normal, kept within 200 B-4 KB)")
    ap.add_argument("--reindex", action="store_true",
                    help="build the first index again instead of reusing the kept one")
    ap.add_argument("--skip-cli", action="store_true", help="skip the `semdex index` runs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--model", help="GGUF embedder (default: the starter model)")
    ap.add_argument("--family")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    t_start = time.perf_counter()
    load_before = os.getloadavg()
    base = args.out / "rescan"
    tree = base / f"tree-{args.files}"
    data_dir = base / f"data-{args.files}"
    record = base / f"first-index-{args.files}.json"
    t = time.perf_counter()
    make_tree(tree, args.files, args.median_bytes)
    stats = tree_stats(tree)
    print(f"tree: {tree} ({stats['files']:,} files in {stats['folders']} folders, "
          f"{stats['bytes'] / 1e6:.1f} MB; ready in {time.perf_counter() - t:.1f} s)",
          file=sys.stderr)

    threads = args.threads or default_threads()
    settings = EmbedderSettings(threads=threads)
    spec = {"tree": json.loads((tree / ".complete").read_text()), "model": args.model,
            "family": args.family, "threads": threads}
    first = json.loads(record.read_text()) if record.exists() else None
    if args.reindex or first is None or first.get("spec") != spec:
        shutil.rmtree(data_dir, ignore_errors=True)
        record.unlink(missing_ok=True)
        first = None

    t = time.perf_counter()
    engine = Engine(data_dir, args.model, args.family, settings)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    engine.embedder  # noqa: B018 - the model is loaded before anything is timed
    load_s = time.perf_counter() - t
    print(f"model: {engine.model.info.name} [{engine.model.profile.family}], {threads} threads, "
          f"load {load_s:.2f} s", file=sys.stderr)

    if first is None:
        print("first index (kept for later runs; --reindex to redo)…", file=sys.stderr)
        first = first_index(engine, tree)
        first["spec"] = spec
        record.write_text(json.dumps(first, indent=2))
        first["cached"] = False
    else:
        first["cached"] = True
    print(f"first index: {first['seconds']:.0f} s, {first['passages']:,} passages, "
          f"{first['tokens']:,} tokens, {first['tokens_per_s']:,.0f} tok/s"
          + (f" (kept from {first['when']})" if first["cached"] else ""), file=sys.stderr)

    # A warm-up run: catches up with anything an interrupted earlier run left behind.
    warm = timed_index(engine, tree)
    print(f"warm-up re-scan: {warm['wall_s']:.2f} s, {warm['files_done']} files read",
          file=sys.stderr)

    results: dict = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": engine.model.info.name, "family": engine.model.profile.family,
        "threads": threads, "cpus": os.cpu_count(), "tree": stats, "first_index": first,
        "engine_open_s": round(open_s, 3), "model_load_s": round(load_s, 3),
        "passages_in_store": engine.store.count_chunks(),
    }

    runs = [timed_index(engine, tree) for _ in range(args.rounds)]
    assert all(r["files_done"] == 0 for r in runs), [r["files_done"] for r in runs]
    results["unchanged"] = {k: summary([r[k] for r in runs]) for k in runs[0]
                            if k.endswith("_s")}
    results["unchanged"]["file_rows_calls"] = max(r["file_rows_calls"] for r in runs)
    print(f"unchanged re-scan: median {results['unchanged']['wall_s']['median']:.2f} s",
          file=sys.stderr)

    store = engine.store
    indexer = Indexer(store, engine.embedder)
    parts = {
        "scan_folder": lambda: sum(1 for _ in scan_folder(str(tree))),
        "file_rows": store.file_rows,
        "plan": lambda: indexer.plan([str(tree)]),
        "purge_orphans": store.purge_orphans,
        "optimize": store.optimize,
    }
    results["parts"] = {name: summary(repeat(fn, args.rounds)) for name, fn in parts.items()}

    rng = random.Random(1)
    pool = sentence_pool()
    for kind in ("touched", "edited"):
        rows = []
        for r in range(args.rounds):
            ids = rng.sample(range(args.files), min(args.changed, args.files))
            paths = [file_path(tree, i) for i in ids]
            if kind == "touched":
                touch(paths, r + 1)
            else:
                edit(paths, ids, pool, args.median_bytes, f"{time.time():.0f}-{r}")
            rows.append(timed_index(engine, tree))
        assert all(x["files_done"] == len(ids) for x in rows), [x["files_done"] for x in rows]
        results[kind] = {k: summary([x[k] for x in rows]) for k in rows[0] if k.endswith("_s")}
        results[kind]["files_per_round"] = len(ids)
        results[kind]["file_rows_calls"] = max(x["file_rows_calls"] for x in rows)
        print(f"{kind} {len(ids)}: median {results[kind]['wall_s']['median']:.2f} s",
              file=sys.stderr)

    # What the Syncer does after a save: a run scoped to the saved path, no optimize.
    rows = []
    for r in range(args.rounds):
        i = rng.randrange(args.files)
        path = file_path(tree, i)
        edit([path], [i], pool, args.median_bytes, f"{time.time():.0f}-saved-{r}")
        rows.append(timed_index(engine, tree, scope=[str(path)]))
    assert all(x["files_done"] == 1 for x in rows), [x["files_done"] for x in rows]
    results["scoped_edit"] = {k: summary([x[k] for x in rows]) for k in rows[0]
                              if k.endswith("_s")}
    results["scoped_edit"]["file_rows_calls"] = max(x["file_rows_calls"] for x in rows)
    print(f"scoped sync of 1 edited file: median {results['scoped_edit']['wall_s']['median']:.2f}"
          " s", file=sys.stderr)
    engine.close()

    if not args.skip_cli:
        walls, inner = [], []
        for _ in range(args.rounds):
            wall, out = cli_index(data_dir, tree, args.threads)
            assert out["files_indexed"] == 0, out
            walls.append(wall)
            inner.append(out["seconds"])
        results["cli_unchanged"] = {"wall_s": summary(walls), "reported_s": summary(inner)}
        print(f"semdex index: median {statistics.median(walls):.2f} s", file=sys.stderr)

    results["load_avg_before"] = [round(x, 2) for x in load_before]
    results["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["script_s"] = round(time.perf_counter() - t_start, 1)
    name = "rescan-results.json" if args.files == 10_000 else f"rescan-results-{args.files}.json"
    (args.out / name).write_text(json.dumps(results, indent=2))
    print_table(results, args)
    return 0


def print_table(res: dict, args: argparse.Namespace) -> None:
    st, fi = res["tree"], res["first_index"]
    print(f"\n`{res['command']}` ({res['model']}, {res['threads']} threads on {res['cpus']} "
          f"CPUs; {st['files']:,} files in {st['folders']} folders, {st['bytes'] / 1e6:.1f} MB, "
          f"{st['min_bytes']}-{st['max_bytes']} B, median {st['median_bytes']} B; load average "
          f"{res['load_avg_before'][0]:.1f} before, {res['load_avg_after'][0]:.1f} after; "
          f"script {res['script_s']:.0f} s)\n")
    print("| what | median | min | max | runs |\n|---|---|---|---|---|")

    def row(label: str, s: dict, depth: int = 0) -> None:
        label = "&nbsp;&nbsp;" * depth + label
        print(f"| {label} | {fmt(s['median'])} | {fmt(s['min'])} | {fmt(s['max'])} | {s['n']} |")

    def inside(r: dict) -> None:
        row(f"in the run: store.file_rows() × {r['file_rows_calls']} (whole files table)",
            r["file_rows_s"], 1)
        if r["purge_orphans_s"]["max"]:
            row("in the run: store.purge_orphans()", r["purge_orphans_s"], 1)
        if r["optimize_s"]["max"]:
            row("in the run: store.optimize()", r["optimize_s"], 1)

    u = res["unchanged"]
    row("**re-scan, nothing changed** (in-process, model loaded)", u["wall_s"])
    for key, label in (("setup_s", "phase: setup (writer lock, state.json)"),
                       ("purge_plan_s", "phase: purge_orphans + plan"),
                       ("pipeline_s", "phase: read/embed/write (nothing to do)"),
                       ("finish_s", "phase: finishing (optimize after a write; bookkeeping)")):
        row(label, u[key], 1)
    inside(u)
    labels = {"scan_folder": "scan_folder (stat every file)",
              "file_rows": "store.file_rows() (whole files table)",
              "plan": "Indexer.plan (the two above + compare)",
              "purge_orphans": "store.purge_orphans()", "optimize": "store.optimize(), nothing new"}
    for key, label in labels.items():
        row(f"called alone: {label}", res["parts"][key], 1)
    for kind in ("touched", "edited"):
        r = res[kind]
        what = "mtime changed, same bytes" if kind == "touched" else "new text, re-embedded"
        row(f"**re-scan, {r['files_per_round']} files {kind}** ({what})", r["wall_s"])
        row("phase: purge_orphans + plan", r["purge_plan_s"], 1)
        row("phase: read/embed/write", r["pipeline_s"], 1)
        row("of which embedding", r["embed_s"], 2)
        row("phase: finishing (optimize; bookkeeping)", r["finish_s"], 1)
        inside(r)
    r = res["scoped_edit"]
    row("**watcher sync of 1 saved file** (run scoped to its path, as the Syncer does)",
        r["wall_s"])
    row("phase: plan (files table + stat of the path)", r["purge_plan_s"], 1)
    row("phase: read/embed/write", r["pipeline_s"], 1)
    row("of which embedding", r["embed_s"], 2)
    row("phase: finishing (bookkeeping; no optimize)", r["finish_s"], 1)
    inside(r)
    if "cli_unchanged" in res:
        c = res["cli_unchanged"]
        row("**`semdex index ROOT`, nothing changed** (subprocess wall time)", c["wall_s"])
        row("its own reported `seconds` (the indexer run)", c["reported_s"], 1)
    print(f"\nFirst index{' (kept from ' + fi['when'] + ')' if fi['cached'] else ''}: "
          f"{fi['files']:,} files, {fi['passages']:,} passages, {fi['tokens']:,} tokens in "
          f"{fi['seconds']:.0f} s = {fi['tokens_per_s']:,.0f} tok/s end to end "
          f"({fi['embed_seconds']:.0f} s in the embedding step). Engine open "
          f"{fmt(res['engine_open_s'])}, model load {fmt(res['model_load_s'])}.")


if __name__ == "__main__":
    os.environ.setdefault("SEMDEX_MODEL_CACHE", str(ROOT / "bench" / "out" / "models"))
    sys.exit(main())
