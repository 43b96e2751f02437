"""The `semdex` command: a contract that scripts and tests rely on.

Results go to stdout, progress and problems to stderr, so `semdex search ... --json | jq` works.
Exit codes: 0 success, 1 a problem the person must fix (bad model, missing folder), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from desktop import __version__
from desktop.frozen import run_child_flag
from desktop.models.profiles import PROFILES, TASKS

log = logging.getLogger("semdex")


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


def _common(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    kw: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    p.add_argument("--data-dir", metavar="DIR", help="where the index lives "
                   "(default: $SEMDEX_DATA_DIR or the user data dir)", **kw)
    p.add_argument("--model", metavar="PATH", help="GGUF embedding model "
                   "(default: the one last indexed with, else the starter model)", **kw)
    p.add_argument("--family", choices=list(PROFILES), metavar="NAME",
                   help="override the model family recognised from the file", **kw)
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for the model", **kw)
    p.add_argument("--gpu-layers", type=int, metavar="N",
                   help="layers to offload to the GPU (-1: all)", **kw)
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr", **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semdex", description="Search your own files by meaning, privately.")
    parser.add_argument("--version", action="version", version=f"semdex {__version__}")
    parser.add_argument("--smoke-test", action="store_true", help="open the window, wait "
                        "until it is ready (and has searched, with --smoke-query), then quit; "
                        "exit 0 if nothing went wrong (for installers and benchmarks)")
    parser.add_argument("--smoke-query", metavar="TEXT",
                        help="with --smoke-test: search for this once the index is ready")
    parser.add_argument("--smoke-open", action="store_true",
                        help="with --smoke-test: open the first result with the system's viewer")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="with --smoke-test: save the window as it closes")
    _common(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="index folders (added to the library)")
    _common(p, defaults=False)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders to index (default: every folder already added)")
    p.add_argument("--chunk-tokens", type=int, metavar="N",
                   help="passage length in the model's tokens (default: the family's)")
    p.add_argument("--overlap", type=int, metavar="N", help="tokens shared by neighbours")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip files or folders matching this pattern (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")

    p = sub.add_parser("search", help="search the index")
    _common(p, defaults=False)
    p.add_argument("query", nargs="?", help="what to look for")
    p.add_argument("--queries", metavar="FILE.jsonl",
                   help='batch mode: lines of {"_id", "text"}; one JSON line out per query')
    p.add_argument("--mode", choices=["semantic", "keyword", "hybrid"], default="hybrid")
    p.add_argument("-k", "--k", type=int, default=10, help="passages to return (default 10)")
    p.add_argument("--per-file", type=int, default=3, metavar="N",
                   help="at most N passages per file (0: no limit; default 3)")
    p.add_argument("--task", choices=list(TASKS), default=None,
                   help="instruction preset for instruction-tuned models (default: general)")
    p.add_argument("--instruction", metavar="TEXT", help="your own task instruction")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = sub.add_parser("watch", help="keep the index in sync with the folders until stopped")
    _common(p, defaults=False)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders to add (default: watch every folder already added)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip files or folders matching this pattern (repeatable)")
    p.add_argument("--polling", action="store_true",
                   help="poll for changes (for network or FUSE drives where events never come)")
    p.add_argument("--quiet", type=float, default=0.3, metavar="SECONDS",
                   help="how long a file must be still before it is indexed (default 0.3)")

    p = sub.add_parser("status", help="what is indexed, and what failed")
    _common(p, defaults=False)
    p.add_argument("--json", action="store_true", help="JSON output")

    p = sub.add_parser("models", help="the active model, the starter, model families")
    _common(p, defaults=False)
    p.add_argument("paths", nargs="*", metavar="PATH", help="GGUF files or folders to inspect")
    p.add_argument("--recheck", action="store_true",
                   help="try the GGUF files given as PATH again in a trial load (a file that "
                        "failed one is otherwise not offered until it or llama.cpp changes)")
    p.add_argument("--json", action="store_true", help="JSON output")
    return parser


def _utf8_streams() -> None:
    """JSON goes out as UTF-8 whatever the code page of a pipe (cp1252 on Windows), and no
    character in a file name or passage can kill a command halfway through its output."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
        if stream is None or encoding in ("utf-8", "utf8"):
            continue
        try:
            if name == "stdout":
                stream.reconfigure(encoding="utf-8", errors="replace")
            else:
                stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text stream we can change
            pass


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    # the frozen app started as its own child (the safe first load, a buffer measurement)
    run_child_flag(args_in)
    _utf8_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command is None:  # no command: the desktop app (Qt is imported only now)
        from desktop.gui.app import main as gui_main

        return gui_main(sys.argv[:1], data_dir=args.data_dir, model=args.model,
                        family=args.family, verbose=args.verbose, smoke_test=args.smoke_test,
                        smoke_query=args.smoke_query, smoke_open=args.smoke_open,
                        screenshot=args.screenshot)
    if not args.verbose:  # llama.cpp's chatter is for --verbose; its errors still show
        logging.getLogger("llama_cpp").setLevel(logging.ERROR)
    from desktop.index.lock import DataDirBusy

    try:
        return COMMANDS[args.command](args)
    except (CliError, DataDirBusy) as exc:
        print(f"semdex: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nsemdex: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `semdex search ... | head`: the reader has had enough
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail too
        except (OSError, ValueError, AttributeError):
            pass
        return 141


def _engine(args: argparse.Namespace):
    from desktop.engine import Engine
    from desktop.models.embedder import EmbedderSettings
    from desktop.models.gguf_info import ModelFileError
    from desktop.models.profiles import NotAnEmbedder
    from desktop.models.starter import StarterModelMissing

    settings = EmbedderSettings(chunk_tokens=getattr(args, "chunk_tokens", None),
                                threads=args.threads, gpu_layers=args.gpu_layers)
    try:
        return Engine(args.data_dir, args.model, args.family, settings)
    except (ModelFileError, NotAnEmbedder, StarterModelMissing) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot use the data dir: {exc}") from None


def _load_model(engine) -> None:
    from desktop.models.gguf_info import ModelFileError
    from desktop.models.model_check import ModelUnusable

    try:
        engine.embedder  # noqa: B018 - tried in a child process first, then loaded
    except ModelUnusable as exc:
        raise CliError(f"{exc}; use another model file (--model PATH)") from None
    except (ModelFileError, ValueError) as exc:
        raise CliError(str(exc)) from None


# -- index ---------------------------------------------------------------------------------

class ProgressLine:
    """One updating line on a terminal; a line every few seconds in a log."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.width = 0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.width = 0


def _describe(prog) -> str:
    from desktop.index.indexer import format_duration  # (loaded by then: indexing has begun)

    if prog.phase == "scanning":
        return "Scanning folders…"
    if prog.phase == "finishing":
        return "Updating the full-text index…"
    return (f"Indexing {prog.files_done:,}/{prog.files_total:,} files · "
            f"{prog.chunks:,} passages · {prog.tokens_per_s:,.0f} tok/s · "
            f"ETA {format_duration(prog.eta_s, compact=True)}")


def _ready_to_write(engine, args: argparse.Namespace) -> None:
    """Folders to work on exist, the model loads; `--model` makes it the active one."""
    if not args.paths and not engine.state.folders:
        raise CliError(f"no folders yet: semdex {args.command} PATH...")
    for p in args.paths:
        if not os.path.isdir(p):
            raise CliError(f"not a folder: {p}")
    _load_model(engine)
    if args.model or args.family:
        engine.remember_model()


def cmd_index(args: argparse.Namespace) -> int:
    from desktop.index.indexer import format_duration
    from desktop.index.lock import WriterLock

    engine = _engine(args)
    with engine, WriterLock(engine.data_dir, "index") as lock:
        _ready_to_write(engine, args)
        line = ProgressLine(sys.stderr)
        m = engine.model
        line.message(f"Model: {m.info.name} ({m.profile.label}, {engine.embedder.dims} dims, "
                     f"passages of {engine.embedder.chunk_tokens} tokens)")
        last = None
        for prog in engine.index(args.paths, excludes=args.exclude, overlap=args.overlap,
                                 lock=lock):
            # a new phase is shown at once; a problem is not a new phase
            force = last is None or (prog.phase != last.phase and prog.phase != "indexing")
            last = prog
            if prog.problem:
                path, reason = prog.problem
                line.message(f"  ! {path}: {reason}")
            line.show(_describe(prog), force=force)
        line.done()
    assert last is not None
    summary = {
        "files_indexed": last.files_done - last.files_failed - last.files_skipped,
        "files_unchanged": last.files_unchanged, "files_removed": last.files_removed,
        "files_failed": last.files_failed, "files_skipped": last.files_skipped,
        "passages": last.chunks, "tokens": last.tokens, "seconds": round(last.elapsed, 3),
        "embed_seconds": round(last.embed_seconds, 3),
        "tokens_per_s": round(last.tokens_per_s, 1),
        "problems": [{"path": p, "reason": r} for p, r in last.problems],
    }
    took = format_duration(last.elapsed, compact=True)
    print(f"Done in {took}: {summary['files_indexed']:,} files indexed "
          f"({last.chunks:,} passages), {last.files_unchanged:,} unchanged, "
          f"{last.files_removed:,} removed, {last.files_failed:,} failed, "
          f"{last.files_skipped:,} skipped.", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0


# -- watch ---------------------------------------------------------------------------------

def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from desktop.index.sync import Syncer, SyncSettings

    engine = _engine(args)
    cancel = threading.Event()

    def stop(*_: object) -> None:
        cancel.set()

    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, stop)
    with engine:
        syncer = Syncer(engine, args.paths, SyncSettings(quiet=args.quiet, polling=args.polling),
                        args.exclude)
        syncer.lock.acquire()  # refused before the model is loaded, not after
        _ready_to_write(engine, args)
        line = ProgressLine(sys.stderr)
        state: dict[str, str | None] = {"phase": None}

        def report(prog) -> None:
            if prog.problem:
                line.message(f"  ! {prog.problem[0]}: {prog.problem[1]}")
            if state["phase"] is None:  # the start-up catch-up shows its progress
                line.show(_describe(prog), force=prog.phase != "indexing")
            if prog.phase == "done":
                if state["phase"] is None:
                    line.done()
                    line.message(f"Up to date: {prog.files_unchanged:,} unchanged, "
                                 f"{prog.files_done:,} indexed, {prog.files_removed:,} removed. "
                                 "Watching for changes (Ctrl+C to stop).")
                    state["phase"] = "watching"
                elif prog.files_done or prog.files_removed:
                    line.message(f"{time.strftime('%H:%M:%S')} synced: "
                                 f"{prog.files_done - prog.files_reused:,} indexed, "
                                 f"{prog.files_reused:,} moved, {prog.files_removed:,} removed")

        def failed(exc: Exception, retry_in: float) -> None:
            line.message(f"{time.strftime('%H:%M:%S')} ! could not update the index: {exc} "
                         f"(trying again in {retry_in:.0f} s)")

        syncer.run(cancel, report, failed)
    print("Stopped.", file=sys.stderr)
    return 0


# -- search --------------------------------------------------------------------------------

def _read_queries(path: str) -> list[tuple[str, str]]:
    out = []
    try:
        src = sys.stdin if path == "-" else open(path, encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    with src:
        for n, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out.append((str(obj["_id"]), str(obj["text"])))
            except (ValueError, KeyError, TypeError):
                raise CliError(f'{path}:{n}: expected {{"_id": ..., "text": ...}}') from None
    return out


def _hit_json(hit) -> dict[str, Any]:
    return {"path": hit.path, "score": round(hit.score, 6), "page": hit.page,
            "start": hit.start, "end": hit.end, "line_start": hit.line_start,
            "line_end": hit.line_end, "text": hit.text}


def cmd_search(args: argparse.Namespace) -> int:
    from desktop.search import snippet

    if (args.query is None) == (args.queries is None):
        raise CliError("give a QUERY or --queries FILE.jsonl (not both)")
    if args.k <= 0:
        raise CliError("--k must be at least 1")
    engine = _engine(args)
    with engine:
        if args.instruction and not engine.model.profile.instruct:
            print(f"semdex: note: {engine.model.profile.label} takes no instruction; "
                  "--instruction is ignored", file=sys.stderr)
        if args.mode != "keyword":
            _load_model(engine)
        kw = dict(mode=args.mode, k=args.k, per_file=args.per_file or None, task=args.task,
                  instruction=args.instruction)
        if args.queries:
            queries = _read_queries(args.queries)
            results = engine.search_many([q for _, q in queries], **kw)
            for (qid, _), hits in zip(queries, results, strict=True):
                print(json.dumps({"_id": qid, "results": [_hit_json(h) for h in hits]},
                                 ensure_ascii=False))
            return 0
        hits = engine.search(args.query, **kw)
    if args.json:
        print(json.dumps({"query": args.query, "mode": args.mode,
                          "results": [_hit_json(h) for h in hits]}, ensure_ascii=False))
        return 0
    if not hits:
        print("No results." if engine.store.count_chunks() else
              "No results: nothing is indexed yet (semdex index PATH).")
        return 0
    home = str(Path.home())
    for h in hits:
        where = f"p. {h.page}" if h.page else f"lines {h.line_start}-{h.line_end}"
        shown = h.path.replace(home, "~", 1) if h.path.startswith(home) else h.path
        print(f"{h.rank:>2}. {h.score:.4f}  {shown}  ({where})")
        print(f"    {snippet(h.text, args.query)}")
    return 0


# -- status --------------------------------------------------------------------------------

def cmd_status(args: argparse.Namespace) -> int:
    engine = _engine(args)
    with engine:
        st = engine.status()
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=2))
        return 0
    m = st["model"]
    print(f"Data dir: {st['data_dir']}")
    print(f"Model:    {m['name']} ({m['family']}, {m['dims']} dims, {m['quantization']})"
          + ("  [starter]" if m["starter"] else ""))
    check = m.get("check")
    if check is None:
        print("Check:    not tried yet (it is, in a separate process, before its first use)")
    elif check["ok"]:
        print(f"Check:    passed its trial load ({check['seconds']:.1f} s, "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(check['checked_at']))})")
    else:
        print(f"Check:    NOT USABLE: {check['reason']}")
    print(f"Index:    {st['files']:,} files, {st['passages']:,} passages")
    if not st["folders"]:
        print("No folders yet: semdex index PATH")
    for f in st["folders"]:
        when = (time.strftime("%Y-%m-%d %H:%M", time.localtime(f["last_sync"]))
                if f["last_sync"] else "never")
        print(f"\n{f['path']}{'' if f['exists'] else '  (missing)'}")
        watch = "watched live" if f["watcher_live"] else "not watched"
        print(f"  {f['files_indexed']:,} files, {f['passages']:,} passages, "
              f"{f['files_failed']:,} failed, {f['files_skipped']:,} skipped, "
              f"{f['pending']:,} pending; last sync {when}; {watch}")
        for p in f["problems"]:
            print(f"  {p['status']:>7}: {p['path']}: {p['reason']}")
    return 0


# -- models --------------------------------------------------------------------------------

def _model_entry(m, gpu, active: str | None) -> dict[str, Any]:
    """One discovered GGUF as `semdex models` reports it: what it is, and whether it fits."""
    from desktop.models.memory import assess, semdex_batch_tokens

    e: dict[str, Any] = {"path": str(m.path), "name": m.name, "source": m.source,
                         "location": str(m.location), "size_bytes": m.size_bytes,
                         "usable": m.usable,
                         "active": str(m.path) == active or (
                             active is None and m.source == "semdex"
                             and m.path.name.startswith("all-MiniLM"))}
    if m.info is not None:
        info = m.info
        e.update(arch=info.arch, quantization=info.quantization, dims=info.embedding_length,
                 context_length=info.context_length, parameters=info.size_label,
                 license=info.license)
    if not m.usable:
        e["problem"] = m.problem
        if m.check is not None:
            e["check"] = m.check.to_dict()
        return e
    p = m.profile
    e.update(family=p.family, label=p.label, pooling=p.pooling_name,
             query_template=p.query_template, document_template=p.doc_template,
             tasks=p.tasks, max_tokens=p.max_tokens)
    batch = semdex_batch_tokens(p.max_tokens, None, p.default_chunk)
    est, verdict = assess(m.info, gpu, batch, extra_weight_bytes=m.size_bytes - m.info.file_size)
    e.update(memory=est.to_dict(), verdict=verdict.to_dict(), fit=verdict.describe())
    return e


def cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from desktop.index.state import State, resolve_data_dir
    from desktop.models.catalogue import missing_from
    from desktop.models.discovery import Locations, discover
    from desktop.models.gpu import detect
    from desktop.models.memory import verdict
    from desktop.models.starter import StarterModelMissing, starter_model_path

    state = State.load(resolve_data_dir(args.data_dir))
    notes = []
    if args.recheck:
        notes += _recheck(args)
    try:
        starter_model_path()  # made once; discovery then finds it among Semdex's own models
    except StarterModelMissing as exc:
        notes.append(str(exc))
    chosen = args.model or state.model.path
    active = str(Path(chosen).expanduser().resolve()) if chosen else None
    folders = [Path(p).expanduser() for p in args.paths]
    if chosen and not args.paths:
        folders.append(Path(chosen).expanduser())
    gpu = detect()
    found = discover(folders, family=args.family,
                     locations=Locations() if args.paths else None)
    entries = [_model_entry(m, gpu, active) for m in found]
    missing = [] if args.paths else missing_from(found)
    if args.json:
        print(json.dumps({
            "accelerator": dataclasses.asdict(gpu), "models": entries, "notes": notes,
            "not_installed": [c.to_dict() | {"verdict": verdict(c.memory(), gpu).to_dict()}
                              for c in missing],
            "families": {k: {"label": p.label, "pooling": p.pooling_name,
                             "query_template": p.query_template,
                             "document_template": p.doc_template,
                             "instruction": p.instruct, "tasks": p.tasks}
                         for k, p in PROFILES.items()}}, ensure_ascii=False, indent=2))
        return 0
    print(f"Accelerator: {gpu.describe()}\n")
    for note in notes:
        print(f"! {note}\n")
    if not entries:
        print("No GGUF files found.")
    for e in entries:
        mark = "*" if e.get("active") else " "
        if e["usable"]:
            print(f"{mark} {e['name']}  [{e['family']}]  {e['dims']} dims, {e['quantization']}, "
                  f"{e['parameters']}, {e['size_bytes'] / 2**20:,.0f} MiB, pooling "
                  f"{e['pooling']}\n    {e['path']}\n    {e['fit']}")
        else:
            print(f"{mark} {e['name']}\n    {e['path']}\n    not usable: {e['problem']}")
    if missing:
        print("\nRecommended, not on this machine:")
        for c in missing:
            quant = c.recommended_quant()
            score = (f", NFCorpus nDCG@10 {c.nfcorpus_ndcg10:.3f}" if c.nfcorpus_ndcg10 else "")
            print(f"  {c.label}: {c.dims} dims, {quant.name} {quant.size_text}{score}; "
                  f"{verdict(c.memory(), gpu).describe()}"
                  + (f"; GGUF e.g. {c.gguf_sources[0]}" if c.gguf_sources else ""))
    print("\nFamilies (--family): " + ", ".join(PROFILES))
    print("Tasks (--task): " + ", ".join(TASKS))
    return 0


def _recheck(args: argparse.Namespace) -> list[str]:
    """`models --recheck PATH...`: a new trial load of each file, whatever is remembered."""
    from desktop.models.embedder import EmbedderSettings
    from desktop.models.gguf_info import ModelFileError
    from desktop.models.model_check import check_file
    from desktop.models.profiles import NotAnEmbedder

    files = [p for p in args.paths if os.path.isfile(p)]
    if not files:
        raise CliError("--recheck needs the GGUF files to try (semdex models --recheck PATH)")
    settings = EmbedderSettings(threads=args.threads, gpu_layers=args.gpu_layers)
    notes = []
    for path in files:
        try:
            result = check_file(path, args.family, settings, force=True)
        except (ModelFileError, NotAnEmbedder) as exc:
            notes.append(f"{path}: not tried: {exc}")
            continue
        notes.append(f"{path}: " + ("passed its trial load" if result.ok
                                    else f"failed its trial load: {result.reason}"))
    return notes


COMMANDS = {"index": cmd_index, "search": cmd_search, "watch": cmd_watch, "status": cmd_status,
            "models": cmd_models}

if __name__ == "__main__":
    sys.exit(main())
