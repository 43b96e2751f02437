"""What must hold for Semdex to work frozen (PyInstaller) as it does from source.

The frozen app itself is built and smoke-tested by installers/build.py (too slow for the
suite); these tests pin the parts of the code that behave differently when frozen: how Semdex
starts itself as a child, the environment it gives other programs, where its bundled files
are, and the window's --smoke-test that the installers' smoke test drives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop import frozen
from desktop.models import starter
from desktop.models.memory import measure_buffers
from desktop.models.trial_load import CHILD_FLAG, child_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def as_frozen(monkeypatch, tmp_path):
    """This process as PyInstaller's bootloader leaves it: sys.frozen, sys._MEIPASS, and the
    bundle's folders in the library and plugin paths."""
    bundle = tmp_path / "opt" / "semdex" / "_internal"
    bundle.mkdir(parents=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle.parent / "semdex"))
    return bundle


def test_children_are_started_without_python_dash_c(as_frozen):
    """A frozen app has no interpreter to hand `-c` or `-m` to: it is started with a flag
    that its entry point routes before anything else."""
    exe = sys.executable
    assert child_command("{}") == [exe, CHILD_FLAG, "{}"]
    assert frozen.child_command("--semdex-measure-buffers", "a", "1") == [
        exe, "--semdex-measure-buffers", "a", "1"]
    for flag in frozen.CHILD_FLAGS:
        assert "-c" not in frozen.child_command(flag) and "-m" not in frozen.child_command(flag)


def test_windows_children_run_as_the_console_exe(as_frozen, monkeypatch):
    """Semdex.exe (the window) has no console and so no standard streams for a child to
    report through; its console twin beside it runs the children."""
    gui = as_frozen.parent / "Semdex.exe"
    cli = as_frozen.parent / "semdex-cli.exe"
    gui.write_bytes(b"MZ")
    monkeypatch.setattr(sys, "executable", str(gui))
    monkeypatch.setattr(sys, "platform", "win32")
    assert child_command("{}")[0] == str(gui)  # no twin (yet): the exe itself
    cli.write_bytes(b"MZ")
    assert child_command("{}") == [str(cli), CHILD_FLAG, "{}"]


def test_source_children_use_the_modules(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert child_command("{}") == [sys.executable, "-m", "desktop.models.trial_load", "{}"]
    assert frozen.child_command("--semdex-measure-buffers", "x")[:3] == [
        sys.executable, "-m", "desktop.models.memory"]


@pytest.mark.parametrize("entry", ["desktop", "desktop.cli"])
def test_entry_points_route_the_child_flags(entry, starter_model):
    """What the frozen exe runs (desktop/__main__.py) and the CLI both hand the trial load's
    flag to the child before parsing arguments or importing Qt."""
    payload = json.dumps({"path": str(starter_model), "settings": {"chunk_tokens": 32}})
    proc = subprocess.Popen([sys.executable, "-m", entry, CHILD_FLAG, payload], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = [json.loads(line) for line in proc.stdout]  # stdin stays open: the parent lives
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert lines[-1]["ok"] and lines[-1]["dims"] == 384


def test_buffer_measurement_runs_through_the_entry_point(starter_model, monkeypatch):
    """measure_buffers' child is a module (no `python -c` script any more), reached through the
    same flag routing as a frozen app's: started here as `python -m desktop FLAG ...`."""
    real = frozen.child_command

    def through_entry(flag, *args):
        return [sys.executable, "-m", "desktop", flag, *args]

    monkeypatch.setattr("desktop.models.memory.child_command", through_entry)
    got = measure_buffers(starter_model, 1, 256)
    assert got.compute_bytes > 0 and got.kv_bytes >= 0
    assert real("--semdex-measure-buffers")[1:3] == ["-m", "desktop.models.memory"]


def test_other_programs_get_the_persons_environment(as_frozen):
    """xdg-open (and the PDF viewer it starts) and nvidia-smi must not load the bundle's Qt
    and libraries: what the bootloader replaced comes back, what it added goes."""
    b = str(as_frozen)
    env = {
        "LD_LIBRARY_PATH": b, "LD_LIBRARY_PATH_ORIG": "/usr/local/lib",
        "QT_PLUGIN_PATH": os.path.join(b, "PySide6", "Qt", "plugins"),
        "QML2_IMPORT_PATH": os.path.join(b, "PySide6", "Qt", "qml"),
        "PATH": os.pathsep.join([b, "/usr/bin", "/bin"]),
        "HOME": "/home/ada",
    }
    out = frozen.external_env(env)
    assert out["LD_LIBRARY_PATH"] == "/usr/local/lib" and "LD_LIBRARY_PATH_ORIG" not in out
    assert "QT_PLUGIN_PATH" not in out and "QML2_IMPORT_PATH" not in out
    assert out["PATH"] == os.pathsep.join(["/usr/bin", "/bin"])
    assert out["HOME"] == "/home/ada"
    # the bootloader's bookkeeping stays with us; a PyInstaller app started from here resets
    with_pyi = frozen.external_env({"_PYI_ARCHIVE_FILE": b, "HOME": "/h"})
    assert "_PYI_ARCHIVE_FILE" not in with_pyi and with_pyi["PYINSTALLER_RESET_ENVIRONMENT"]
    # no original value: the variable goes entirely
    assert "LD_LIBRARY_PATH" not in frozen.external_env({"LD_LIBRARY_PATH": b})
    # a person's own plugin path beside the bundle's is kept
    mixed = frozen.external_env({"QT_PLUGIN_PATH": os.pathsep.join([b, "/opt/kde/plugins"])})
    assert mixed["QT_PLUGIN_PATH"] == "/opt/kde/plugins"


def test_a_macos_apps_resources_count_as_the_bundle(tmp_path):
    """In Semdex.app the bundle dir is Contents/Frameworks, and PyInstaller's Qt hook also
    points QML2_IMPORT_PATH into Contents/Resources."""
    frameworks = tmp_path / "Semdex.app" / "Contents" / "Frameworks"
    resources = frameworks.parent / "Resources"
    env = {"QML2_IMPORT_PATH": os.pathsep.join([str(resources / "PySide6" / "Qt" / "qml"),
                                                str(frameworks / "PySide6" / "Qt" / "qml")])}
    assert "QML2_IMPORT_PATH" not in frozen.external_env(env, bundle=frameworks)


def test_from_source_the_environment_is_passed_as_it_is(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    env = {"LD_LIBRARY_PATH": "/x", "QT_PLUGIN_PATH": "/y"}
    assert frozen.external_env(env) == env


def test_the_bundled_starter_model_is_used_as_it_is(as_frozen, starter_model, tmp_path,
                                                    monkeypatch):
    """The installed app converts nothing and needs no pip package: the GGUF is in the
    bundle, and the starter package's absence does not matter."""
    models = as_frozen / "models"
    models.mkdir()
    bundled = models / starter.STARTER_FILENAME
    bundled.write_bytes(Path(starter_model).read_bytes())
    monkeypatch.setattr(starter, "find_starter_weights", lambda: None)
    assert starter.starter_model_path(tmp_path / "empty-cache") == bundled
    assert not (tmp_path / "empty-cache").exists()


def test_the_icon_is_in_the_package():
    """`pip install .` ships desktop/resources (package data): the window's icon is found
    there from a source install and from the bundle alike."""
    icon = frozen.resource("semdex.svg")
    assert icon.is_file() and icon.read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    assert icon.parent == ROOT / "desktop" / "resources"


@pytest.mark.slow
@pytest.mark.gui
def test_the_window_smoke_test(tmp_path, starter_model, model_cache):
    """`semdex --smoke-test` (what the installers' smoke test runs on the frozen app): the real
    window starts, catches up with an indexed folder, searches, previews the first result,
    saves a screenshot and exits 0."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bread.txt").write_text("Sourdough bread needs a starter of flour and water.\n")
    (docs / "garden.md").write_text("# Tomatoes\n\nTomato plants need full sun and a stake.\n")
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    env.update(QT_QPA_PLATFORM="offscreen", SEMDEX_MODEL_CACHE=str(model_cache))
    data = ["--data-dir", str(tmp_path / "data")]
    subprocess.run([sys.executable, "-m", "desktop", *data, "index", str(docs)], env=env,
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    shot = tmp_path / "window.png"
    proc = subprocess.run([sys.executable, "-m", "desktop", *data, "--smoke-test",
                           "--smoke-query", "baking bread", "--screenshot", str(shot)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()
             if line.startswith("semdex-smoke:")]
    steps = [parts[1] for parts in lines]
    assert steps == ["shown", "ready", "results", "ok"], proc.stdout
    assert int(lines[2][2]) >= 1
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.gui
def test_the_window_smoke_test_fails_when_there_is_nothing_to_search(tmp_path, model_cache):
    """Asked to search and nothing indexed (a smoke test set up wrong): not a pass."""
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    env.update(QT_QPA_PLATFORM="offscreen", SEMDEX_MODEL_CACHE=str(model_cache))
    proc = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", str(tmp_path / "d"),
                           "--smoke-test", "--smoke-query", "anything"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "semdex-smoke: nothing indexed to search" in proc.stdout


@pytest.mark.gui
def test_the_window_smoke_test_fails_on_a_broken_model(tmp_path, model_cache):
    """A smoke test that cannot fail proves nothing: with a model that cannot be loaded the
    window reports the error and the smoke test exits 1 and prints it."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    env.update(QT_QPA_PLATFORM="offscreen", SEMDEX_MODEL_CACHE=str(model_cache))
    proc = subprocess.run([sys.executable, "-m", "desktop", "--data-dir", str(tmp_path / "d"),
                           "--model", str(bad), "--smoke-test"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "semdex-smoke: error:" in proc.stderr and "broken.gguf" in proc.stderr


@pytest.mark.gui
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xdg-open is Linux's opener")
def test_open_hands_the_file_to_xdg_open_without_the_bundles_paths(as_frozen, tmp_path,
                                                                    monkeypatch):
    """Frozen, "Open" starts the system's opener itself, with the person's environment: a
    stand-in xdg-open on the PATH records what it got."""
    from desktop.gui.launch import open_path

    seen = tmp_path / "seen.txt"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "xdg-open").write_text(f'#!/bin/sh\necho "ARGS=$*" > "{seen}.tmp"\n'
                                   f'env >> "{seen}.tmp"\nmv "{seen}.tmp" "{seen}"\n')
    (fake / "xdg-open").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(fake), os.environ["PATH"]]))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(as_frozen))
    monkeypatch.setenv("QT_PLUGIN_PATH", str(as_frozen / "PySide6" / "Qt" / "plugins"))
    doc = tmp_path / "a report.pdf"
    doc.write_bytes(b"%PDF-1.4\n")
    assert open_path(str(doc))
    for _ in range(100):
        if seen.exists():
            break
        time.sleep(0.05)
    lines = seen.read_text().splitlines()
    assert lines[0] == f"ARGS={doc}"
    assert not [line for line in lines if str(as_frozen) in line]
