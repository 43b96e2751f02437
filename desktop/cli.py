"""The `semdex` command: a contract that scripts and tests rely on.

Results go to stdout, progress and problems to stderr, so `semdex search ... --json | jq` works.
Exit codes: 0 success, 1 a problem the person must fix (bad model, missing folder), 2 usage.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from desktop.search.query import MODES, TYPE_GROUPS

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
    p.add_argument("--device", metavar="NAME", help="the GPU to run the model on, as "
                   "`semdex models` lists them (Vulkan0, CUDA1), or cpu; default: the "
                   "discrete GPU with the most free memory", **kw)
    p.add_argument("--embed-url", metavar="URL", help="compute vectors on an embedding "
                   "server (OpenAI /v1/embeddings, e.g. llama-server) with the model of "
                   "--model: http://gpu-box:8080/v1", **kw)
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
    _reading(p)

    p = sub.add_parser("search", help="search the index")
    _common(p, defaults=False)
    p.add_argument("query", nargs="?", help="what to look for")
    p.add_argument("--queries", metavar="FILE.jsonl",
                   help='batch mode: lines of {"_id", "text"}; one JSON line out per query')
    p.add_argument("--mode", choices=MODES, default=None,
                   help="default: the one set in the window's settings (hybrid)")
    p.add_argument("-k", "--k", type=int, default=10, help="passages to return (default 10)")
    p.add_argument("--per-file", type=int, default=None, metavar="N",
                   help="at most N passages per file (0: no limit; default: the settings' 3)")
    p.add_argument("--task", choices=list(TASKS), default=None,
                   help="instruction preset for instruction-tuned models (default: the "
                        "settings', general)")
    p.add_argument("--instruction", metavar="TEXT", help="your own task instruction "
                   "(default: the one set in the window, if any)")
    p.add_argument("--folder", metavar="DIR",
                   help="only files under this folder (as the window's folder filter)")
    p.add_argument("--type", action="append", default=[], choices=list(TYPE_GROUPS),
                   dest="types", help="only files of this type (repeatable)")
    p.add_argument("--since", metavar="WHEN", help="only files modified since: a date "
                   "(2026-11-30), a date and time (2026-11-30T14:00) or a time ago "
                   "(12h, 7d, 4w, 1y: the window's past day/week/month/year)")
    p.add_argument("--until", metavar="WHEN", help="only files modified before: as --since "
                   "(a date includes that whole day)")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = sub.add_parser("ask", help="a short answer from your documents, written by a local "
                       "chat model, every sentence cited")
    _common(p, defaults=False)
    p.add_argument("question", help="what to ask")
    p.add_argument("--chat-model", metavar="PATH", help="the chat GGUF that writes the answer "
                   "(default: the one chosen in the window's model picker)")
    p.add_argument("--context", type=int, metavar="N", help="the chat model's context in "
                   "tokens (default: the settings', else the model's own, at most 8,192)")
    p.add_argument("--answer-tokens", type=int, metavar="N",
                   help="the longest answer, in tokens (default: the settings' 384)")
    p.add_argument("-k", "--k", type=int, default=8, help="passages to give the model (at "
                   "most; default 8, fewer when they do not fit its context)")
    p.add_argument("--folder", metavar="DIR", help="only files under this folder")
    p.add_argument("--type", action="append", default=[], choices=list(TYPE_GROUPS),
                   dest="types", help="only files of this type (repeatable)")
    p.add_argument("--since", metavar="WHEN", help="only files modified since (as search)")
    p.add_argument("--until", metavar="WHEN", help="only files modified before (as search)")
    p.add_argument("--json", action="store_true", help='JSON output: {"answer", "citations": '
                   '[{"n", "path", "page", "start", "end"}], "refused", "timings", ...}')

    p = sub.add_parser("watch", help="keep the index in sync with the folders until stopped")
    _common(p, defaults=False)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders to add (default: watch every folder already added)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip files or folders matching this pattern (repeatable)")
    p.add_argument("--polling", action="store_true", default=None,
                   help="poll for changes (for network or FUSE drives where events never "
                        "come; default: the settings')")
    p.add_argument("--quiet", type=float, default=0.3, metavar="SECONDS",
                   help="how long a file must be still before it is indexed (default 0.3)")
    _reading(p)

    p = sub.add_parser("remove", help="take folders out of the library and forget their "
                       "index (the files stay where they are)")
    _common(p, defaults=False)
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders added before")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")

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
        try:
            from desktop.gui.app import main as gui_main  # noqa: TID251 - the composition root
        except ImportError as exc:  # a server without Qt: the commands still work
            print(f"semdex: the window cannot start: {exc}. The commands (semdex index, "
                  "search, watch, status, models) work without it.", file=sys.stderr)
            return 1

        return gui_main(sys.argv[:1], data_dir=args.data_dir, model=args.model,
                        family=args.family, verbose=args.verbose, smoke_test=args.smoke_test,
                        smoke_query=args.smoke_query, smoke_open=args.smoke_open,
                        screenshot=args.screenshot)
    if not args.verbose:  # llama.cpp's chatter is for --verbose; its errors still show
        logging.getLogger("llama_cpp").setLevel(logging.ERROR)
    from desktop.index.lock import DataDirBusy
    from desktop.models.server_url import EmbedServerError

    try:
        return COMMANDS[args.command](args)
    except (CliError, DataDirBusy, EmbedServerError) as exc:
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


def _config(args: argparse.Namespace):
    """The settings the window saved (config.json), read once per command; what was wrong
    with the file is said on stderr, as the window says it in its own way."""
    from desktop.config import Config

    if getattr(args, "_config", None) is None:
        config, notes = Config.load_with_notes()
        for note in notes:
            print(f"semdex: note: {note}", file=sys.stderr)
        args._config = config
    return args._config


def _data_dir(args: argparse.Namespace) -> str | None:
    """--data-dir, else the settings' data folder, else $SEMDEX_DATA_DIR or the default (the
    order the window uses)."""
    return args.data_dir or _config(args).data_dir


def _engine(args: argparse.Namespace):
    from desktop.engine import Engine
    from desktop.models.gguf_info import ModelFileError
    from desktop.models.profiles import NotAnEmbedder
    from desktop.models.starter import StarterModelMissing

    settings = _config(args).embedder_settings(
        chunk_tokens=getattr(args, "chunk_tokens", None), threads=args.threads,
        gpu_layers=args.gpu_layers, embed_url=args.embed_url, device=args.device)
    extraction = _config(args).extract_settings()
    changes = {name: getattr(args, name) for name in ("ocr_pdfs", "ocr_images", "max_text_mb")
               if getattr(args, name, None) is not None}
    if getattr(args, "extract_timeout", None) is not None:
        changes["timeout_s"] = args.extract_timeout
    if changes:
        extraction = dataclasses.replace(extraction, **changes)
    try:
        return Engine(_data_dir(args), args.model, args.family, settings,
                      extraction=extraction)
    except (ModelFileError, NotAnEmbedder, StarterModelMissing) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot use the data dir: {exc}") from None


def _excludes(args: argparse.Namespace) -> list[str]:
    """The settings' excluded names, and those given with --exclude."""
    return list(dict.fromkeys([*_config(args).excludes, *args.exclude]))


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


def _reading(p: argparse.ArgumentParser) -> None:
    """How files are read, over the settings' (config.json, the window's Settings)."""
    p.add_argument("--ocr-images", dest="ocr_images", action=argparse.BooleanOptionalAction,
                   default=None, help="read text in images (.png .jpg .tiff .webp) with OCR "
                   "(default: the settings', off)")
    p.add_argument("--ocr-pdfs", dest="ocr_pdfs", action=argparse.BooleanOptionalAction,
                   default=None, help="read scanned PDF pages with OCR (default: the "
                   "settings', on)")
    p.add_argument("--max-text-mb", type=_positive, metavar="MB", help="skip files with more "
                   "text than this (default: the settings', 16)")
    p.add_argument("--extract-timeout", type=_positive, metavar="SECONDS", help="give up on a "
                   "file (or a page of a scan) that takes longer to read (default: 120)")


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {value}")
    return number


def _describe(prog) -> str:
    from desktop.durations import format_duration

    if prog.phase == "scanning":
        return "Scanning folders…"
    if prog.phase == "finishing":
        return prog.step or "Updating the keyword index…"
    line = (f"Indexing {prog.files_done:,}/{prog.files_total:,} files · "
            f"{prog.chunks + prog.file_passages_done:,} passages · "
            f"{prog.tokens_per_s:,.0f} tok/s · ETA {format_duration(prog.eta_s, compact=True)}")
    if prog.reading and prog.reading_pages:  # a scan being read by OCR
        done, total = prog.reading_pages
        pace = prog.ocr_seconds_per_page
        return (f"{line} · {os.path.basename(prog.reading)}: OCR page {min(done + 1, total):,} of "
                f"{total:,}" + (f" ({pace:.1f} s a page)" if pace else ""))
    if prog.reading:  # the embedder waits while a large file is read and cut
        return f"{line} · reading {os.path.basename(prog.reading)}…"
    if prog.file_passages_total and prog.current:
        return (f"{line} · {os.path.basename(prog.current)}: "
                f"{prog.file_passages_done:,}/{prog.file_passages_total:,} passages")
    return line


def _ready_to_write(engine, args: argparse.Namespace) -> None:
    """Folders to work on exist, the model loads; `--model` makes it the active one."""
    if not args.paths and not engine.state.folders:
        raise CliError(f"no folders yet: semdex {args.command} PATH...")
    for p in args.paths:
        try:
            engine.check_folder(p)
        except ValueError as exc:  # (NotADirectoryError is an OSError)
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(str(exc)) from None
    _load_model(engine)
    if args.model or args.family:
        engine.remember_model()


def cmd_index(args: argparse.Namespace) -> int:
    from desktop.durations import format_duration

    engine = _engine(args)
    with engine, engine.writing("index"):
        _ready_to_write(engine, args)
        line = ProgressLine(sys.stderr)
        m = engine.model
        line.message(f"Model: {m.info.name} ({m.profile.label}, {engine.embedder.dims} dims, "
                     f"passages of {engine.embedder.chunk_tokens} tokens)")
        last = None
        for prog in engine.index(args.paths, excludes=_excludes(args), overlap=args.overlap):
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

    from desktop.index.sync import Syncer

    engine = _engine(args)
    cancel = threading.Event()

    def stop(*_: object) -> None:
        cancel.set()

    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, stop)
    settings = _config(args).sync_settings(quiet=args.quiet, polling=args.polling)
    # the lock first: refused before the model is loaded, not after
    with engine, engine.writing("watch"):
        syncer = Syncer(engine, args.paths, settings, _excludes(args))
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


def _when(text: str | None, flag: str, *, end: bool = False) -> float | None:
    """--since/--until: a date, a date and time (local), or a time ago (12h, 7d, 4w, 1y; a
    month is 31 days and a year 365, as the window's past month and year)."""
    import datetime as dt
    import re

    if text is None:
        return None
    ago = re.fullmatch(r"\s*(\d+)\s*([hdwmy])\s*", text.lower())
    if ago:
        hours = {"h": 1, "d": 24, "w": 24 * 7, "m": 24 * 31, "y": 24 * 365}[ago.group(2)]
        return time.time() - int(ago.group(1)) * hours * 3600.0
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{flag}: expected a date (2026-11-30), a date and time "
                       f"(2026-11-30T14:00) or a time ago (7d), not {text!r}") from None
    if end and len(text.strip()) <= 10:  # a date alone: until the end of that day
        when += dt.timedelta(days=1)
    return when.timestamp()


def _filters(args: argparse.Namespace):
    from desktop.search.query import Filters

    if args.folder and not os.path.isdir(args.folder):
        raise CliError(f"--folder: not a folder: {args.folder}")
    since, until = _when(args.since, "--since"), _when(args.until, "--until", end=True)
    if since is not None and until is not None and since >= until:
        raise CliError("--since must be before --until")
    return Filters.of(args.types, args.folder, since, until)


def cmd_search(args: argparse.Namespace) -> int:
    from desktop.search.display import hit_json, location, score_text, short_path, snippet
    from desktop.search.query import Query

    if (args.query is None) == (args.queries is None):
        raise CliError("give a QUERY or --queries FILE.jsonl (not both)")
    if args.k <= 0:
        raise CliError("--k must be at least 1")
    config = _config(args)
    filters = _filters(args)
    mode = args.mode or config.search_mode
    per_file = config.per_file if args.per_file is None else args.per_file
    engine = _engine(args)
    with engine:
        instruct = engine.model.profile.instruct
        if args.instruction and not instruct:
            print(f"semdex: note: {engine.model.profile.label} takes no instruction; "
                  "--instruction is ignored", file=sys.stderr)
        instruction = args.instruction or (
            config.custom_instruction if instruct and args.task is None else None) or None
        if mode != "keyword":
            _load_model(engine)
        q = Query(args.query or "", mode=mode, k=args.k, per_file=per_file or None,
                  task=args.task or config.task, instruction=instruction, filters=filters)
        if args.queries:
            queries = _read_queries(args.queries)
            results = engine.search_many([t for _, t in queries], mode=q.mode, k=q.k,
                                         per_file=q.per_file, task=q.task,
                                         instruction=q.instruction, filters=q.filters)
            for (qid, _), hits in zip(queries, results, strict=True):
                print(json.dumps({"_id": qid, "results": [hit_json(h, mode) for h in hits]},
                                 ensure_ascii=False))
            return 0
        hits = engine.run_query(q)
        indexed = engine.store.count_chunks() if not hits else 0
    if args.json:
        print(json.dumps({"query": args.query, "mode": mode,
                          "results": [hit_json(h, mode) for h in hits]}, ensure_ascii=False))
        return 0
    if not hits:
        print("No results." if indexed and not filters else
              "No results with these filters." if indexed else
              "No results: nothing is indexed yet (semdex index PATH).")
        return 0
    for h in hits:
        print(f"{h.rank:>2}. {score_text(h.score, mode)}  {short_path(h.path)}  "
              f"({location(h)})")
        print(f"    {snippet(h.text, args.query)}")
    return 0


# -- remove --------------------------------------------------------------------------------

def cmd_remove(args: argparse.Namespace) -> int:
    """What the window's "Remove from library" does, from the command line."""
    engine = _engine(args)
    out = []
    with engine, engine.writing("index"):
        roots = [os.path.abspath(os.path.expanduser(p)) for p in args.paths]
        for root in roots:  # all known, or nothing is removed
            if root not in engine.state.folders:
                raise CliError(f"not in the library: {root} (semdex status lists its folders)")
        for root in roots:
            out.append({"path": root, "files_forgotten": engine.remove_folder(root)})
    for r in out:
        print(f"Removed {r['path']} ({r['files_forgotten']:,} files forgotten; "
              "the files themselves are untouched).", file=sys.stderr)
    if args.json:
        print(json.dumps({"removed": out}, ensure_ascii=False))
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
    if m.get("embed_url"):
        print(f"Vectors:  from the embedding server {m['embed_url']}")
    else:
        c = st["compute"]
        layers = {0: "", -1: ", all layers"}.get(c["gpu_layers"], f", {c['gpu_layers']} layers")
        print(f"Runs on:  {c['text']}{layers}" + (f" ({c['note']})" if c["note"] else ""))
    check = m.get("check")
    if m.get("embed_url"):
        pass  # the server loads the weights: no trial load here
    elif check is None:
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

def cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from desktop.index.state import State
    from desktop.models.discovery import Locations
    from desktop.models.memory import describe_estimate
    from desktop.models.starter import StarterModelMissing, starter_model_path
    from desktop.models.survey import survey
    from desktop.paths import resolve_data_dir

    located = resolve_data_dir(_data_dir(args))
    if isinstance(located, str):  # on object storage
        from desktop.index.remote_dir import RemoteDocs, connect

        state = State.load(RemoteDocs(connect(located)))
    else:
        state = State.load(located)
    notes = []
    if args.recheck:
        notes += _recheck(args)
    try:
        starter_model_path()  # made once; discovery then finds it among Semdex's own models
    except StarterModelMissing as exc:
        notes.append(str(exc))
    config = _config(args)
    found = survey(args.paths, args.model or state.model.path, list_chosen=not args.paths,
                   family=args.family, locations=Locations() if args.paths else None,
                   chunk_tokens=config.chunk_tokens, threads=args.threads or config.threads,
                   device=config.embedder_settings(device=args.device).device,
                   chat_model=config.chat_model, chat_context=config.chat_context)
    gpu = found.gpu
    entries = [d.to_dict() for d in found.models]
    missing = [] if args.paths else found.missing
    if args.json:
        print(json.dumps({
            "accelerator": dataclasses.asdict(gpu), "models": entries, "notes": notes,
            "chat_models": [c.to_dict() for c in found.chats],
            "cpu_variants": _cpu_variants(),
            "not_installed": [s.entry.to_dict() | {"verdict": s.verdict.to_dict()}
                              for s in missing],
            "families": {k: {"label": p.label, "pooling": p.pooling_name,
                             "query_template": p.query_template,
                             "document_template": p.doc_template,
                             "instruction": p.instruct, "tasks": p.tasks}
                         for k, p in PROFILES.items()}}, ensure_ascii=False, indent=2))
        return 0
    print(f"Accelerator: {gpu.describe()}")
    print(f"Models run on: {gpu.choice or gpu.name}"
          + ("" if len(gpu.gpus) < 2 else "  (others: " + ", ".join(
              d.label() for d in gpu.gpus if d.name != gpu.device) + "; --device NAME)")
          + "\n")
    for note in notes:
        print(f"! {note}\n")
    if not entries:
        print("No GGUF files found.")
    for d, e in zip(found.models, entries, strict=True):
        mark = "*" if e.get("active") else " "
        if e["usable"]:
            print(f"{mark} {e['name']}  [{e['family']}]  {e['dims']} dims, {e['quantization']}, "
                  f"{e['parameters']}, {e['size_bytes'] / 2**20:,.0f} MiB, pooling "
                  f"{e['pooling']}\n    {e['path']}\n    {e['fit']}")
            if args.verbose and d.estimate is not None:
                print(f"    memory at {d.estimate.batch_tokens} tokens a batch: "
                      f"{describe_estimate(d.estimate)}")
        else:
            print(f"{mark} {e['name']}\n    {e['path']}\n    not usable: {e['problem']}")
    if found.chats:
        print("\nChat models (for semdex ask):")
        for c in found.chats:
            e = c.to_dict()
            mark = "*" if c.chosen else " "
            if c.usable:
                print(f"{mark} {e['name']}  [{e['template']} template]  {e['quantization']}, "
                      f"{e['parameters']}, context {e['context']:,} tokens (KV "
                      f"{e['kv_bytes_per_token'] / 1024:.0f} KiB a token)\n    {e['path']}\n"
                      f"    {e['fit']}" + (f"; {e['together']}" if e["together"] else ""))
            else:
                print(f"{mark} {e['name']}\n    {e['path']}\n    not usable: {e['problem']}")
    if missing:
        print("\nRecommended, not on this machine:")
        for s in missing:
            c, quant = s.entry, s.entry.recommended_quant()
            score = (f", NFCorpus nDCG@10 {c.nfcorpus_ndcg10:.3f}" if c.nfcorpus_ndcg10 else "")
            print(f"  {c.label}: {c.dims} dims, {quant.name} {quant.size_text}{score}; "
                  f"{s.verdict.describe()}"
                  + (f"; GGUF e.g. {c.gguf_sources[0]}" if c.gguf_sources else ""))
    print("\nFamilies (--family): " + ", ".join(PROFILES))
    print("Tasks (--task): " + ", ".join(TASKS))
    return 0


def _cpu_variants() -> list[str]:
    """The CPU variants of a portable llama.cpp build (the installers'); none otherwise."""
    try:
        from desktop.models.llama_model import cpu_variants

        return cpu_variants()
    except Exception:  # noqa: BLE001 - llama_cpp missing or broken: said elsewhere
        return []


def _recheck(args: argparse.Namespace) -> list[str]:
    """`models --recheck PATH...`: a new trial load of each file, whatever is remembered."""
    from desktop.models.gguf_info import ModelFileError
    from desktop.models.model_check import check_file
    from desktop.models.profiles import NotAnEmbedder

    files = [p for p in args.paths if Path(p).is_file()]
    if not files:
        raise CliError("--recheck needs the GGUF files to try (semdex models --recheck PATH)")
    # what the window and `semdex index` load with, so the outcome is the one they look up
    settings = _config(args).embedder_settings(threads=args.threads, gpu_layers=args.gpu_layers,
                                               device=args.device)
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


# -- ask -----------------------------------------------------------------------------------

def cmd_ask(args: argparse.Namespace) -> int:
    from desktop.ask import answer as ask
    from desktop.ask.chat_model import ChatModel, ChatModelError, check_chat_model
    from desktop.search.display import location, short_path

    config = _config(args)
    if args.k <= 0:
        raise CliError("--k must be at least 1")
    filters = _filters(args)
    settings = config.chat_settings(chat_model=args.chat_model, context=args.context,
                                    answer_tokens=args.answer_tokens, threads=args.threads,
                                    gpu_layers=args.gpu_layers, device=args.device)
    if settings is None:
        raise CliError("no chat model chosen: give --chat-model PATH (a chat GGUF such as "
                       "Mistral 7B Instruct), or choose one in the window's model picker")
    engine = _engine(args)
    with engine:
        if not engine.store.count_chunks():
            raise CliError("nothing is indexed yet: semdex index PATH")
        try:  # checked now (a broken template is said at once); loaded past the gate
            check_chat_model(settings.path)
        except ChatModelError as exc:
            raise CliError(str(exc)) from None
        loaded: list[ChatModel] = []

        def load() -> ChatModel:
            loaded.append(ChatModel(settings))
            return loaded[-1]

        try:
            events = list(_stream_answer(ask.answer(args.question, engine, load,
                                                    filters=filters, k=args.k),
                                         show=not args.json))
        finally:
            for chat in loaded:
                chat.close()
    done = next((e for e in events if isinstance(e, ask.Done)), None)
    error = next((e for e in events if isinstance(e, ask.Error)), None)
    if error is not None:
        raise CliError(f"could not answer: {error.message}")
    sources = next((e.passages for e in events if isinstance(e, ask.Sources)), [])
    refusal = next((e for e in events if isinstance(e, ask.Refusal)), None)
    assert done is not None
    by_n = {s.n: s for s in sources}
    if args.json:
        print(json.dumps({
            "answer": done.answer, "refused": done.refused,
            "refusal": refusal.reason if refusal else None,
            "citations": [by_n[n].to_dict() for n in done.cited],
            "sources": [s.to_dict() for s in sources],
            "removed_citations": done.removed, "uncited_sentences": done.uncited_sentences,
            "stopped": done.stopped, "timings": done.timings}, ensure_ascii=False, indent=2))
        return 0
    if done.refused and refusal is not None and refusal.before_model:
        print(f"No answer: {refusal.reason}.")
    print()
    if done.cited:
        print("Sources:")
        for n in done.cited:
            s = by_n[n]
            print(f"  [{n}] {short_path(s.path)}, {location(s)}")
    elif sources and not done.refused:
        print("(The answer cites none of the passages it was given.)")
    t = done.timings
    if t.get("first_token_s") is not None:
        print(f"\n{t['answer_tokens']} tokens, first after {t['first_token_s']:.1f} s, "
              f"{t['tokens_per_s']:.1f} tokens/s"
              + (f"; {done.removed} invalid citation(s) removed" if done.removed else ""),
              file=sys.stderr)
    return 0


def _stream_answer(events, *, show: bool):
    """The events, the answer's text printed as it comes when `show`."""
    from desktop.ask import answer as ask

    for event in events:
        if show and isinstance(event, ask.Token):
            print(event.text, end="", flush=True)
        yield event


COMMANDS = {"index": cmd_index, "search": cmd_search, "watch": cmd_watch, "status": cmd_status,
            "models": cmd_models, "remove": cmd_remove, "ask": cmd_ask}

if __name__ == "__main__":
    sys.exit(main())
