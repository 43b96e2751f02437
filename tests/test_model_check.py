"""The safe first load: a model file is tried in a child process before Semdex loads it.

The crashing file is real: a LLaMA GGUF whose key/value head count does not divide its head
count passes every header check, and llama.cpp then aborts the whole process on a
GGML_ASSERT while it builds the graph. These tests prove that the abort ends only the child,
that the person gets a message naming the file and the assert, that the outcome is
remembered (and forgotten when the file or the build changes), and that the main process
never loads the file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.models import model_check, trial_load
from desktop.models.embedder import EmbedderSettings
from desktop.models.gguf_info import read_model_info
from desktop.models.model_check import (
    CheckResult,
    ModelUnusable,
    check,
    check_file,
    failures,
    latest,
    remembered,
)
from desktop.models.profiles import detect_profile
from desktop.models.trial_load import CHILD_FLAG, child_command, interpret
from tests.fixtures import tiny_gguf
from tests.fixtures.tiny_gguf import write_tiny_llama

ROOT = Path(__file__).resolve().parent.parent
E5 = "e5-mistral"
# the assert llama.cpp fails; its operands' names depend on the CPU's attention kernels
MUL_MAT_ASSERT = re.compile(r"GGML_ASSERT\(ggml_can_mul_mat\(\w+, \w+\)\) failed")


def write_aborting_llama(path: Path) -> Path:
    """A tiny LLaMA with 4 heads and 3 key/value heads: llama.cpp aborts on it (SIGABRT,
    GGML_ASSERT(ggml_can_mul_mat(a, b)) failed, or (k, q) where the CPU's kernels build the
    attention differently, as on Intel's AMX machines) when it creates the context."""
    check_dims = tiny_gguf._check_dims
    tiny_gguf._check_dims = lambda *a: None  # the fixture refuses such shapes itself
    try:
        return write_tiny_llama(path, n_head=4, n_head_kv=3)
    finally:
        tiny_gguf._check_dims = check_dims


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "checks.json"


@pytest.fixture(scope="module")
def aborting(tmp_path_factory) -> Path:
    return write_aborting_llama(tmp_path_factory.mktemp("crash") / "e5-mistral-crash.gguf")


def _check(path: Path, records: Path, family: str | None = None, **kw) -> CheckResult:
    info = read_model_info(path)
    return check(info, detect_profile(info, family), EmbedderSettings(**kw), records=records)


def _run_semdex(*args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "desktop.cli", *args], capture_output=True,
                          text=True, env=full, cwd=ROOT, timeout=300)


def test_the_starter_passes_once_and_is_remembered(starter_model, records):
    first = _check(starter_model, records)
    assert first.ok and not first.remembered and first.dims == 384, first.reason
    assert first.stage == "done" and first.seconds > 0
    stored = json.loads(records.read_text(encoding="utf-8"))["records"]
    assert len(stored) == 1 and str(starter_model.resolve()) in next(iter(stored))
    again = _check(starter_model, records)
    assert again.ok and again.remembered and again.checked_at == first.checked_at
    # other load settings are another check; the thread count is not
    assert _check(starter_model, records, threads=1).remembered
    other = _check(starter_model, records, chunk_tokens=64)
    assert other.ok and not other.remembered
    assert len(json.loads(records.read_text(encoding="utf-8"))["records"]) == 2


def test_an_aborting_file_fails_in_the_child_only(aborting, records):
    result = _check(aborting, records)
    assert not result.ok and not result.transient
    if sys.platform != "win32":
        assert "aborted (SIGABRT)" in result.reason
    assert MUL_MAT_ASSERT.search(result.reason), result.reason
    assert result.stage == "load" and "while loading the model" in result.reason
    again = _check(aborting, records)
    assert again.remembered and not again.ok and again.reason == result.reason
    assert failures([aborting], records=records)[aborting].reason == result.reason


def test_a_changed_file_is_checked_again(tmp_path, records):
    path = write_tiny_llama(tmp_path / "e5-mistral-tiny.gguf")
    assert _check(path, records, E5).ok
    assert _check(path, records, E5).remembered
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    info = read_model_info(path)
    assert remembered(info, detect_profile(info, E5), EmbedderSettings(), records=records) is None
    assert not _check(path, records, E5).remembered


def test_a_new_build_is_checked_again(tmp_path, records, monkeypatch):
    path = write_tiny_llama(tmp_path / "e5-mistral-tiny.gguf")
    assert _check(path, records, E5).ok
    monkeypatch.setattr(model_check, "build_id", lambda: "another-llama.cpp-build")
    assert not _check(path, records, E5).remembered


def test_the_engine_refuses_the_file_and_never_loads_it(aborting, tmp_path, monkeypatch):
    import desktop.engine as engine_mod

    loaded = []

    original = engine_mod.Embedder

    def spy(*args, **kw):
        loaded.append(args[0])
        return original(*args, **kw)

    monkeypatch.setattr(engine_mod, "Embedder", spy)
    engine = Engine(tmp_path / "data", aborting)
    with pytest.raises(ModelUnusable) as err:
        engine.embedder  # noqa: B018
    assert aborting.name in str(err.value) and "GGML_ASSERT" in str(err.value)
    assert "Semdex does not load this file" in str(err.value)
    assert loaded == []  # the main process never handed the file to llama.cpp
    with pytest.raises(ModelUnusable):  # the next try is answered from the record
        engine.embedder  # noqa: B018
    assert loaded == []
    check_status = engine.status()["model"]["check"]
    assert check_status["ok"] is False and "GGML_ASSERT" in check_status["reason"]
    engine.close()


@pytest.mark.slow
def test_the_command_line_names_the_file_and_the_assert(aborting, tmp_path, starter_model):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("A note about the zebra at the zoo.\n", encoding="utf-8")
    data = str(tmp_path / "data")
    # a cache of its own: the trial load runs here, not answered from another test's record
    env = {"SEMDEX_MODEL_CACHE": str(tmp_path / "cache")}

    def _semdex(*args: str) -> subprocess.CompletedProcess[str]:
        return _run_semdex(*args, env=env)

    proc = _semdex("--data-dir", data, "index", "--model", str(aborting), str(docs))
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"semdex: {aborting.name}: llama.cpp aborted"), last
    assert MUL_MAT_ASSERT.search(last), last
    assert last.endswith("use another model file (--model PATH)") and "Traceback" not in proc.stderr
    proc = _semdex("--data-dir", data, "search", "--model", str(aborting), "zebra")
    assert proc.returncode == 1 and "GGML_ASSERT" in proc.stderr
    proc = _semdex("--data-dir", data, "status", "--model", str(aborting), "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)["model"]["check"]
    assert status["ok"] is False and status["stage"] == "load"
    proc = _semdex("--data-dir", data, "status", "--model", str(aborting))
    assert "NOT USABLE: llama.cpp aborted" in proc.stdout
    proc = _semdex("models", str(aborting.parent), "--json")
    entry = json.loads(proc.stdout)["models"][0]
    assert entry["usable"] is False and "GGML_ASSERT" in entry["problem"]
    assert entry["check"]["ok"] is False
    # the starter still works from the same data dir
    proc = _semdex("--data-dir", data, "index", str(docs), "--json")
    assert proc.returncode == 0, proc.stderr
    proc = _semdex("--data-dir", data, "status")
    assert "passed its trial load" in proc.stdout
    # asked to, the command tries the file again (it fails again: nothing changed)
    proc = _semdex("models", "--recheck", str(aborting))
    assert proc.returncode == 0 and "failed its trial load: llama.cpp aborted" in proc.stdout
    assert "not usable" in proc.stdout


def test_a_child_out_of_time_is_not_remembered(starter_model, records):
    info = read_model_info(starter_model)
    result = check(info, detect_profile(info), EmbedderSettings(chunk_tokens=32),
                   records=records, timeout=0.01)
    assert not result.ok and result.transient and "did not finish" in result.reason
    assert not records.exists()
    with pytest.raises(ModelUnusable, match="will try it again next time"):
        model_check.ensure_usable(info, detect_profile(info), EmbedderSettings(chunk_tokens=32),
                                  records=records, cancel=_set())


def _set():
    import threading

    event = threading.Event()
    event.set()
    return event


def test_a_cancelled_trial_is_not_remembered(starter_model, records):
    info = read_model_info(starter_model)
    result = check(info, detect_profile(info), EmbedderSettings(chunk_tokens=40),
                   records=records, cancel=_set())
    assert not result.ok and result.transient and "cancelled" in result.reason
    assert not records.exists()


def test_a_later_pass_clears_an_earlier_failure(tmp_path, records):
    """Try Again: a file that failed once and passes now is offered again."""
    path = write_tiny_llama(tmp_path / "e5-mistral-tiny.gguf")
    info = read_model_info(path)
    key = model_check.record_key(info, detect_profile(info, E5), EmbedderSettings(gpu_layers=0))
    crash = CheckResult(False, "llama.cpp crashed with a segmentation fault (SIGSEGV) while "
                        "embedding test passages", "embed")
    model_check._save_record(records, key, crash)
    assert failures([path], records=records)[path].reason == crash.reason
    assert _check(path, records, E5, gpu_layers=0).remembered  # (not tried again by itself)
    passed = check_file(path, E5, EmbedderSettings(gpu_layers=0), records=records, force=True)
    assert passed.ok and not passed.remembered
    assert failures([path], records=records) == {}
    assert latest([path], records=records)[path].ok


@pytest.mark.parametrize(("rc", "words", "transient"), [
    (-signal.SIGSEGV, "crashed with a segmentation fault (SIGSEGV)", False),
    (-signal.SIGABRT, "aborted (SIGABRT)", False),
    (-signal.SIGILL, "stopped on an instruction this processor does not have (SIGILL)", False),
    (-signal.SIGKILL, "was killed, perhaps for want of memory (SIGKILL)", True),
    (-signal.SIGTERM, "was stopped (SIGTERM)", True),
    (0, "ended without a result", True),
    (1, "ended with exit code 1", True),  # a kill on Windows: not a verdict on the file
])
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_how_a_child_ending_is_told(rc, words, transient):
    out = '{"stage": "load"}\n{"stage": "embed"}\n'
    err = ("print_info: file type = Q4_1\n/tmp/pip-x/vendor/llama.cpp/ggml/src/ggml-cpu/amx/"
           "mmq.cpp:2412: GGML_ASSERT(n % 32 == 0) failed\n")
    result = interpret(rc, out, err, 1.5)
    assert not result.ok and result.transient is transient
    assert result.reason.startswith(f"llama.cpp {words} while embedding test passages")
    assert result.detail == "GGML_ASSERT(n % 32 == 0) failed (mmq.cpp:2412)"


def test_a_clean_refusal_is_told_in_llama_cpps_words_and_not_remembered():
    out = '{"stage": "load"}\n{"ok": false, "reason": "llama.cpp could not load it: bad"}\n'
    result = interpret(trial_load.REFUSED, out, "", 0.2)
    assert not result.ok and result.transient and result.stage == "load"
    assert result.reason == "llama.cpp could not load it: bad"
    out = '{"stage": "load"}\n{"stage": "embed"}\n{"ok": false, "reason": "not numbers"}\n'
    broken = interpret(trial_load.BROKEN, out, "", 0.2)
    assert not broken.ok and not broken.transient and broken.reason == "not numbers"


def test_a_trial_that_never_reached_llama_cpp_is_not_a_verdict():
    err = 'Traceback (most recent call last):\n  File "x"\nModuleNotFoundError: No module ' \
          "named 'numpy'\n"
    result = interpret(trial_load.FAILED, '{"stage": "load"}\n', err, 0.1)
    assert result.transient and "ModuleNotFoundError: No module named 'numpy'" in result.reason
    assert interpret(1, "", "", 0.1).transient  # died before it said anything


def test_windows_exception_codes(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    out = '{"stage": "load"}\n{"stage": "embed"}\n'
    access = interpret(0xC0000005, out, "", 0.1)
    assert not access.transient and "access violation (exit code 0xc0000005)" in access.reason
    assert not interpret(0xC000001D, out, "", 0.1).transient
    assert interpret(1, out, "", 0.1).transient  # TerminateProcess from the Task Manager


def test_the_child_protocol_through_the_command(starter_model):
    """The frozen app has no `-m`: the command itself takes the child's flag."""
    payload = json.dumps({"path": str(starter_model), "settings": {"chunk_tokens": 32}})
    assert child_command(payload)[-1] == payload
    proc = subprocess.Popen([sys.executable, "-m", "desktop.cli", CHILD_FLAG, payload],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True)
    lines = [json.loads(line) for line in proc.stdout]  # the child closes it as it ends
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert lines[0] == {"stage": "load"} and lines[-1]["ok"] and lines[-1]["dims"] == 384
    from desktop.frozen import CHILD_FLAGS

    assert CHILD_FLAGS[CHILD_FLAG][0] == "desktop.models.trial_load"  # what the entry points route


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX fifo")
def test_the_child_ends_when_its_parent_goes(tmp_path, starter_model):
    """A child stuck in its work (here: reading a model file that never comes) ends as soon
    as its stdin closes, which is what happens when the app that started it quits or dies."""
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    payload = json.dumps({"path": str(fifo), "settings": {"family": "all-minilm"}})
    proc = subprocess.Popen([sys.executable, "-m", "desktop.models.trial_load", payload],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    assert json.loads(proc.stdout.readline()) == {"stage": "load"}  # and now it is stuck
    time.sleep(0.3)
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.stdin.close()
    assert proc.wait(timeout=10) == trial_load.ORPHANED
    assert time.monotonic() - t0 < 5
