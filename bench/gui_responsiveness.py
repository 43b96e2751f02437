"""How long the window's event loop is ever blocked while the library is being indexed.

The goal: the GUI thread is never blocked for more than 50 ms. The real main window (offscreen,
with its real IndexWorker thread, the starter model and a real store) is given a folder of a
few hundred notes; from the moment it is added until the worker reports it up to date, a 10 ms
QTimer records the time between its ticks. A tick late by more than its 10 ms is time the GUI
thread could not react. With `--search-every S` (default 1 s) a query is also typed every S
seconds during indexing, so searching, the results list and its painting are part of what is
measured (searches run on the Searcher's own thread; only showing them is on the GUI thread).

Usage:
    python bench/gui_responsiveness.py [--files 300] [--pdfs 0] [--bad 0] [--rounds 1]
                                       [--search-every 1.0] [--threads N]

Prints a Markdown table and writes bench/out/gui-responsiveness-results.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.rescan import file_path, file_text, sentence_pool  # noqa: E402

QUERIES = ("how do exceptions propagate", "default argument values", "the import system",
           "iterating over a dictionary", "what a generator returns", "class attributes")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def run_round(args: argparse.Namespace, base: Path, round_no: int) -> dict:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.gui import index_worker as w
    from desktop.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    data = base / f"data-{round_no}"
    shutil.rmtree(data, ignore_errors=True)
    config = None
    if args.ask:  # Ask while indexing: the answer streams into the window as it is written
        from bench.ask import smollm2
        from desktop.config import Config

        config = Config(chat_model=str(args.chat_model or smollm2()), chat_context=2048,
                        answer_tokens=96)
    win = MainWindow(data, model=args.model, family=args.family, launch=False, config=config)
    win.resize(1280, 800)
    win.show()

    def pump_until(cond, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.002)

    pump_until(lambda: win.worker_state() == w.IDLE, 120)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    searches: list[int] = []
    win.search_finished.connect(searches.append)
    typing = QTimer()
    typing.setInterval(int(args.search_every * 1000))
    queries = iter(QUERIES * 1000)
    typing.timeout.connect(lambda: (win.search_field.setText(next(queries)),
                                    win.search_bar.search_now()))

    gc_pauses: list[tuple[int, float]] = []  # (generation, ms) of each collection
    gc_start = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], (time.perf_counter() - gc_start[0]) * 1000))

    gc.callbacks.append(on_gc)
    t0 = time.perf_counter()
    last[0] = t0
    timer.start()
    if args.search_every > 0:
        typing.start()
    answers: list = []
    asks = iter(QUERIES * 1000)

    def ask_next(*_: object) -> None:
        if len(answers) < args.ask:
            win.search_field.setText(next(asks))
            win.ask()

    win.answer_finished.connect(answers.append)
    win.answer_finished.connect(lambda _d: QTimer.singleShot(200, ask_next))
    win.add_folders([str(base / "tree")])
    pump_until(lambda: win.worker_state() == w.INDEXING, 60)
    if args.ask:  # once there are passages to answer from (before, the gate refuses)
        pump_until(lambda: win.status().get("passages", 0) >= 50, 120)
        ask_next()
    pump_until(lambda: win.worker_state() == w.WATCHING and len(answers) >= args.ask, 3600)
    elapsed = time.perf_counter() - t0
    timer.stop()
    typing.stop()
    gc.callbacks.remove(on_gc)
    st = win.status()
    win.close()
    late = [g * 1000 for g in gaps]
    return {
        "seconds": round(elapsed, 2), "ticks": len(gaps),
        "files": st.get("files", 0), "passages": st.get("passages", 0),
        "searches": len(searches), "answers": len(answers),
        "answer_tokens": sum(a.timings.get("answer_tokens", 0) for a in answers),
        "max_ms": round(max(late), 1), "p99_ms": round(percentile(late, 0.99), 1),
        "p50_ms": round(statistics.median(late), 1),
        "over_50ms": sum(1 for g in late if g > 50),
        "gc_full": sum(1 for gen, _ in gc_pauses if gen == 2),
        "gc_max_ms": round(max((ms for _, ms in gc_pauses), default=0.0), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=300, help="notes in the folder")
    ap.add_argument("--median-bytes", type=int, default=320)
    ap.add_argument("--pdfs", type=int, default=0,
                    help="also this many 20-page PDFs (pypdf's parsing is Python, GIL-bound)")
    ap.add_argument("--bad", type=int, default=0,
                    help="also this many corrupt PDFs: each is a failure the panel lists")
    ap.add_argument("--search-every", type=float, default=1.0,
                    help="type a query every S seconds while indexing (0: never)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--ask", type=int, default=0, metavar="N",
                    help="press Ask N times while indexing (the answers stream into the "
                    "window; typed searches are then off)")
    ap.add_argument("--chat-model", type=Path, help="for --ask (default: SmolLM2-135M)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--model", help="GGUF embedder (default: the starter model)")
    ap.add_argument("--family")
    ap.add_argument("--threads", type=int, default=None,
                    help="model threads (default: the config's, else every core)")
    args = ap.parse_args()
    if args.ask:
        args.search_every = 0  # (the Ask button reads the search field)

    base = args.out / "gui-responsiveness"
    cfg = base / "config"
    shutil.rmtree(cfg, ignore_errors=True)
    os.environ["SEMDEX_CONFIG_DIR"] = str(cfg)  # window.ini and config.json of its own
    os.environ.setdefault("SEMDEX_LOG_DIR", str(base / "logs"))
    os.environ.setdefault("SEMDEX_MODEL_CACHE", str(args.out / "models"))
    if args.threads:
        cfg.mkdir(parents=True, exist_ok=True)
        (cfg / "config.json").write_text(json.dumps({"threads": args.threads}))
    tree = base / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    pool = sentence_pool()
    for i in range(args.files):
        p = file_path(tree, i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(file_text(i, pool, args.median_bytes), encoding="utf-8")

    if args.pdfs:
        from tests.fixtures.documents import make_pdf

        (tree / "papers").mkdir(parents=True, exist_ok=True)
        for i in range(args.pdfs):
            pages = [file_text(i * 20 + p, pool, 2400, lo=1500) for p in range(20)]
            make_pdf(tree / "papers" / f"paper-{i:03d}.pdf", pages)

    if args.bad:
        from tests.fixtures.documents import make_corrupt_pdf

        (tree / "damaged").mkdir(parents=True, exist_ok=True)
        for i in range(args.bad):
            make_corrupt_pdf(tree / "damaged" / f"scan-{i:04d}.pdf")

    load_before = os.getloadavg()
    rounds = [run_round(args, base, r) for r in range(args.rounds)]
    load_after = os.getloadavg()
    results = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "files": args.files, "pdfs": args.pdfs, "bad": args.bad,
        "search_every_s": args.search_every,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "rounds": rounds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gui-responsiveness-results.json").write_text(json.dumps(results, indent=2))
    print(f"\n`{results['command']}` (load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f}; goal: max gap < 50 ms)\n")
    print("| round | files | passages | indexing s | searches | answers (tokens) | ticks | "
          "p50 ms | p99 ms | max ms | gaps > 50 ms | full GCs | longest GC ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rounds, 1):
        print(f"| {i} | {r['files']} | {r['passages']} | {r['seconds']} | {r['searches']} | "
              f"{r['answers']} ({r['answer_tokens']}) | {r['ticks']} | {r['p50_ms']} | "
              f"{r['p99_ms']} | {r['max_ms']} | {r['over_50ms']} | {r['gc_full']} | "
              f"{r['gc_max_ms']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
