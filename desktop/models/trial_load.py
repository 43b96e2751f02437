"""A model file loaded, and test passages embedded, in a child process: the trial load.

llama.cpp ends the whole process on some inputs instead of returning an error: a GGML_ASSERT
aborts, a bad kernel segfaults (the AMX kernels on quantized weights, llama.cpp#20824), a
build for a newer processor stops on an illegal instruction. Here that can only end the
child. The parent learns how far the child got from the JSON lines it writes (stage "load",
then "embed", then the result) and how it ended from its exit status, and puts both into
words. model_check decides what is remembered.

The child runs in its own session (process group on Windows), so a Ctrl+C in the terminal
does not reach it; it watches its stdin and exits when the parent goes; it writes its
messages to a private copy of stdout and points the real one at stderr, so whatever C code
prints cannot garble them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from desktop import frozen
from desktop.models.embedder import EmbedderSettings
from desktop.models.gguf_info import ModelFileError

log = logging.getLogger(__name__)

CHILD_FLAG = "--semdex-model-check"  # how a frozen app is asked to be the child
TIMEOUT = 900.0  # seconds: a 7B F16 file read from a slow disk and run on two cores
# the child's own exit codes
REFUSED = 65  # llama.cpp returned an error (it did not crash)
BROKEN = 67  # the vectors were not numbers, or zero: a broken kernel or file
FAILED = 66  # the trial itself could not run (a Python error in the child)
ORPHANED = 70  # the parent went away

_SIGNALS = {
    "SIGSEGV": "crashed with a segmentation fault",
    "SIGABRT": "aborted",
    "SIGILL": "stopped on an instruction this processor does not have",
    "SIGBUS": "crashed reading the file (was it changed or cut short?)",
    "SIGFPE": "crashed with an arithmetic error",
    "SIGSYS": "crashed with a bad system call",
}
_TRANSIENT = {"SIGKILL": "was killed, perhaps for want of memory", "SIGTERM": "was stopped",
              "SIGINT": "was interrupted", "SIGHUP": "was stopped"}
_WINDOWS = {0xC0000005: "crashed with an access violation",
            0xC000001D: "stopped on an instruction this processor does not have",
            0xC0000409: "aborted", 0xC00000FD: "crashed with a stack overflow", 3: "aborted"}
_STAGES = {"start": "starting", "load": "loading the model",
           "embed": "embedding test passages", "answer": "writing a test answer",
           "done": "finishing"}
_ASSERT = re.compile(r"((?:[\w./\\:-]+\.(?:c|cpp|h):\d+: )?GGML_ASSERT\(.*\) failed|"
                     r"terminate called .*|[\w./\\:-]+\.(?:c|cpp|h):\d+: .+)")
_SOURCE = re.compile(r"^(?:.*[\\/])?([\w.-]+\.(?:c|cpp|h):\d+): (.+)$")


@dataclass
class CheckResult:
    ok: bool
    reason: str = ""  # plain words for the person; "" when it passed
    stage: str = "done"  # where the child was when it ended
    detail: str = ""  # llama.cpp's last words (a GGML_ASSERT line), when there were any
    seconds: float = 0.0
    checked_at: float = field(default_factory=time.time)
    dims: int | None = None
    remembered: bool = False  # a record of an earlier run, not run now
    # may go otherwise next time (killed, too slow, out of memory, cancelled): not remembered
    transient: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("transient")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        names = {f for f in cls.__dataclass_fields__ if f != "transient"}
        return cls(**{k: v for k, v in d.items() if k in names})


# -- the parent side ---------------------------------------------------------------------------


def child_command(payload: str) -> list[str]:
    """This Python with this module, or the frozen app itself (it has no `-m`): its entry
    point hands CHILD_FLAG to run_as_child before anything else (desktop/frozen.py)."""
    return frozen.child_command(CHILD_FLAG, payload)


def run_child(path: str | os.PathLike[str], settings: EmbedderSettings, *,
              timeout: float = TIMEOUT, cancel: threading.Event | None = None) -> CheckResult:
    payload = json.dumps({"path": os.fspath(path), "settings": asdict(settings)})
    return run_trial(CHILD_FLAG, payload, timeout=timeout, cancel=cancel)


def run_trial(flag: str, payload: str, *, timeout: float = TIMEOUT,
              cancel: threading.Event | None = None) -> CheckResult:
    """Start Semdex as the child that ``flag`` names (frozen.CHILD_FLAGS) with ``payload``,
    and read what became of it: its last words on stdout, or how it died."""
    env = dict(os.environ)
    env["GGML_NO_BACKTRACE"] = "1"  # ggml would attach gdb to itself to print a backtrace
    env.setdefault("PYTHONIOENCODING", "utf-8")
    kw: dict[str, Any] = {}
    if sys.platform == "win32":  # no console window; a console Ctrl+C stays with the parent
        kw["creationflags"] = (getattr(subprocess, "CREATE_NO_WINDOW", 0)
                               | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
    else:
        kw["start_new_session"] = True
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(frozen.child_command(flag, payload), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kw)
    except OSError as exc:
        return CheckResult(False, f"the trial load could not start ({exc})", "start",
                           transient=True)
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [threading.Thread(target=_drain, args=(s, buf), daemon=True)
               for s, buf in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    ended = None  # why the parent ended it
    try:
        # stdin stays open while the child runs: it exits when it sees it closed, so a
        # parent that dies (or quits) does not leave a child holding gigabytes of weights
        deadline = t0 + timeout
        while True:
            try:
                rc = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    ended = "cancelled"
                elif time.monotonic() > deadline:
                    ended = "timeout"
                if ended:
                    proc.kill()
                    rc = proc.wait()
                    break
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        for r in readers:
            r.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    seconds = time.monotonic() - t0
    stdout = b"".join(out).decode("utf-8", "replace")
    stderr = b"".join(err).decode("utf-8", "replace")
    if ended == "cancelled":
        return CheckResult(False, "the trial load was cancelled", _stage(stdout), "", seconds,
                           transient=True)
    return interpret(rc, stdout, stderr, seconds, ended == "timeout", timeout)


def _drain(stream, buf: list[bytes]) -> None:
    kept = 0
    for chunk in iter(lambda: stream.read(8192), b""):
        buf.append(chunk)
        kept += len(chunk)
        while kept > 256_000 and len(buf) > 1:  # the tail is what says what happened
            kept -= len(buf.pop(0))


def _messages(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            out.append(msg)
    return out


def _stage(stdout: str) -> str:
    stage = "start"
    for msg in _messages(stdout):
        stage = msg.get("stage", stage)
    return stage


def interpret(rc: int, stdout: str, stderr: str, seconds: float, timed_out: bool = False,
              timeout: float = TIMEOUT) -> CheckResult:
    """What the child's exit means, in words, and whether it is worth remembering."""
    messages = _messages(stdout)
    stage = _stage(stdout)
    final = next((m for m in reversed(messages) if "ok" in m), None)
    detail = _last_words(stderr)
    where = _STAGES.get(stage, stage)
    if timed_out:
        return CheckResult(False, f"llama.cpp did not finish {where} within {timeout:.0f} s",
                           stage, detail, seconds, transient=True)
    if final is not None and rc == 0 and final.get("ok"):
        return CheckResult(True, "", "done", "", seconds, dims=final.get("dims"))
    if final is not None and rc in (REFUSED, BROKEN):
        # a refusal is llama.cpp's own error (out of memory, a file it cannot read): the
        # main process would get the same error, not a crash; not remembered, it may pass
        return CheckResult(False, str(final.get("reason") or "llama.cpp refused it"), stage,
                           detail, seconds, transient=rc == REFUSED)
    if rc == FAILED or (stage == "start" and rc >= 0):  # it never reached llama.cpp
        why = _python_error(stderr) or f"exit code {rc}"
        return CheckResult(False, f"the trial load could not run ({why})", stage, "", seconds,
                           transient=True)
    what, transient = _exit_words(rc)
    reason = f"llama.cpp {what} while {where}"
    if detail:
        reason += f": {detail}"
    return CheckResult(False, reason, stage, detail, seconds, transient=transient)


def _exit_words(rc: int) -> tuple[str, bool]:
    """How a child that did not finish ended, and whether it may go otherwise next time.
    Only a crash by signal (or its Windows exception code) is remembered."""
    if rc == ORPHANED:
        return "was left by the process that started it", True
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            return f"ended on signal {-rc}", True
        if name in _SIGNALS:
            return f"{_SIGNALS[name]} ({name})", False
        return f"{_TRANSIENT.get(name, 'was stopped')} ({name})", True
    if sys.platform == "win32" and (rc & 0xFFFFFFFF) in _WINDOWS:
        return f"{_WINDOWS[rc & 0xFFFFFFFF]} (exit code {rc & 0xFFFFFFFF:#x})", False
    if rc == 0:
        return "ended without a result", True
    return f"ended with exit code {rc}", True  # a kill on Windows, an exit() in C: unclear


def _last_words(stderr: str) -> str:
    """The line that says why: a GGML_ASSERT, an abort message, a C++ terminate."""
    for line in reversed(stderr.splitlines()):
        m = _ASSERT.search(line)
        if not m:
            continue
        text = m.group(1).strip()
        # "/tmp/pip-x/vendor/llama.cpp/ggml/src/ggml.c:3354: GGML_ASSERT(...) failed" ->
        # "GGML_ASSERT(...) failed (ggml.c:3354)"
        where = _SOURCE.match(text)
        if where:
            text = f"{where.group(2)} ({where.group(1)})"
        return text[:300]
    return ""


def _python_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line):
            return line.strip()[:200]
    return ""


# -- the child ---------------------------------------------------------------------------------

_SAMPLE = ("Semdex reads the documents in your folders, splits them into passages and finds "
           "the ones that answer your question by meaning, not only by the words in it. ")
_SHORT = ("Invoice 2024-117: three nights, breakfast included.",
          "The meeting moved to Thursday at ten.",
          "Résumé, naïve café, 日本語のテキスト, emoji 🙂.")
_out = None  # the private copy of stdout the messages go to


def _say(**msg: Any) -> None:
    _out.write(json.dumps(msg) + "\n")
    _out.flush()


def _exit_with_parent() -> None:
    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(ORPHANED)

    threading.Thread(target=watch, daemon=True).start()


def _private_stdout() -> None:
    global _out
    try:
        fd = os.dup(1)
        os.dup2(2, 1)  # C code that prints to stdout now prints to stderr
        _out = os.fdopen(fd, "w", encoding="utf-8")
    except OSError:
        _out = sys.stdout


def child_setup() -> None:
    """What a trial child does first: its messages get stdout to themselves (C code's prints
    go to stderr), errors are logged to stderr, and it dies with its parent."""
    _private_stdout()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr,
                        format="%(name)s: %(message)s")
    if sys.stdin is not None and not sys.stdin.isatty():
        _exit_with_parent()


say = _say  # a trial child's message to its parent: a line of JSON on the private stdout


def child_main(argv: Sequence[str]) -> int:
    import numpy as np

    from desktop.models import llama_log
    from desktop.models.embedder import Embedder

    child_setup()
    args = json.loads(argv[0])
    settings = EmbedderSettings(**args["settings"])
    t0 = time.monotonic()
    _say(stage="load")
    llama_log.install()  # (loads the llama.cpp library: a build this CPU cannot run stops here)
    try:
        emb = Embedder(args["path"], settings)
    except (ModelFileError, ValueError) as exc:
        _say(ok=False, reason=getattr(exc, "reason", str(exc)))
        return REFUSED
    try:
        _say(stage="embed")
        unit = max(1, emb.count(_SAMPLE))
        long_doc = emb.encode_document(_SAMPLE * (emb.chunk_tokens // unit + 1))
        if len(long_doc) > emb.pack_tokens:  # one full-length passage, its last token kept
            long_doc = long_doc[:emb.pack_tokens - 1] + long_doc[-1:]
        vectors = [emb.embed_tokens([long_doc]),
                   emb.embed_tokens([emb.encode_document(t) for t in _SHORT]),
                   emb.embed_queries(["where is the hotel invoice from last spring?"])]
        dims = emb.dims
        emb.close()
    except (ModelFileError, ValueError, RuntimeError) as exc:
        _say(ok=False, reason=f"llama.cpp failed embedding test passages: {exc}")
        return REFUSED
    for v in vectors:
        norms = np.linalg.norm(v, axis=1)
        if not np.all(np.isfinite(v)) or np.any(norms < 0.5):
            _say(ok=False, reason="llama.cpp gave vectors that are not numbers, or zero "
                 "(a broken kernel or file)")
            return BROKEN
    _say(stage="done", ok=True, dims=dims, seconds=round(time.monotonic() - t0, 3))
    return 0


def run_as_child(argv: Sequence[str], main: Callable[[Sequence[str]], int] | None = None
                 ) -> None:
    """Run the child (``main``, child_main unless given) and end the process at once: no
    interpreter shutdown, which would race the thread that watches stdin (and tear down
    llama.cpp for nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # an interrupt ends it as a signal
    try:
        code = (main or child_main)(argv)
    except BaseException:  # a Python error: its traceback goes to the parent on stderr
        import traceback

        traceback.print_exc()
        code = FAILED
    for stream in (_out, sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    run_as_child(sys.argv[1:])
