"""Contracts of the design: the core never imports Qt, and Semdex opens no network connection."""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import desktop

ROOT = Path(__file__).resolve().parent.parent
GUI_PACKAGES = ("desktop.gui",)


def _core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(desktop.__path__, "desktop."):
        if not info.name.startswith(GUI_PACKAGES):
            names.append(info.name)
    return names


def test_core_is_qt_free():
    modules = _core_modules()
    assert "desktop.engine" in modules and "desktop.extract.pdf" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in "
        "('PySide6', 'shiboken6', 'PyQt5', 'PyQt6'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_help_does_not_import_qt():
    """`semdex --help` (the CLI's front door) loads no Qt: the CLI works without PySide6."""
    code = ("import sys\nfrom desktop.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('QT', any(m.startswith('PySide6') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                         check=True)
    assert "QT False" in out.stdout


@pytest.mark.slow
def test_index_and_search_open_no_network_connection(tmp_path, starter_model, model_cache):
    """Private by default: trace every connect() of the whole process tree. Without strace it
    is skipped here, but fails on CI (CI set): a CI machine must have strace."""
    if shutil.which("strace") is None:
        if os.environ.get("CI"):
            pytest.fail("strace is not installed: CI must install it (the privacy proof)")
        pytest.skip("strace is not installed")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("The boiler service is booked for Tuesday morning.\n")
    env = {**os.environ, "SEMDEX_MODEL_CACHE": str(model_cache),
           "SEMDEX_DATA_DIR": str(tmp_path / "data")}
    trace = tmp_path / "trace"
    cli = [sys.executable, "-m", "desktop.cli"]
    for i, args in enumerate((["index", str(docs)], ["search", "boiler repair", "--json"])):
        subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "-o", f"{trace}{i}",
                        *cli, *args], env=env, cwd=ROOT, check=True, capture_output=True)
    calls = "".join(p.read_text() for p in tmp_path.glob("trace*"))
    inet = [line for line in calls.splitlines() if "AF_INET" in line]
    assert inet == [], inet
