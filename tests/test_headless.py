"""The core without Qt: `semdex index`, `search` and `status` work on a machine where PySide6
cannot be imported at all, and the core's layers import only downwards.

(ruff's banned-api, run by tests/test_lint.py, forbids PySide6 and desktop.gui in the core
statically, imports inside functions included; this proves the commands really run so.)
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESKTOP = ROOT / "desktop"

# Layers, top-down: a module may import its own layer's modules and those of layers below.
# gui and cli are composition roots above live sync (desktop.index.sync, which drives the
# engine: the window and `semdex watch` run it); the engine drives index, search and
# models; search ranks over the index's store with the models' embedder; index uses the models
# (the chunker counts the model's tokens) and extract; models and extract import no other layer.
LAYERS: dict[str, set[str]] = {
    # the person's settings, which the faces read and turn into the core's settings objects
    "config": {"config", "sync", "engine", "ask", "index", "search", "models", "extract",
               "base"},
    "sync": {"engine", "index", "models", "base"},  # live sync drives the engine
    "engine": {"index", "search", "models", "extract", "base"},
    # answers: retrieval through search, a chat model loaded by the models' loader
    # (ask and search name places as the formats do: extract.kinds's words, "slide 2")
    "ask": {"ask", "search", "index", "models", "extract", "base"},
    "search": {"search", "index", "models", "extract", "base"},
    "index": {"index", "models", "extract", "base"},
    "models": {"models", "base"},
    "extract": {"extract", "base"},
    "base": {"base"},  # paths, atomic, logs, frozen, timefmt: the ground floor
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "desktop" or len(parts) < 2:
        return None
    if parts[1] in ("gui", "cli", "__main__"):
        return "top"
    if parts[1:3] == ["index", "sync"]:
        return "sync"
    if parts[1] == "config":
        return "config"
    if parts[1] in ("engine", "ask", "search", "index", "models", "extract"):
        return parts[1]
    return "base"


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_core_imports_only_downwards():
    wrong = []
    for path in sorted(DESKTOP.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        mod = rel[:-3].replace("/", ".").removesuffix(".__init__")
        layer = _layer(mod)
        if layer in (None, "top"):
            continue
        allowed = LAYERS[layer]
        for imp in _imports(path):
            target = _layer(imp)
            if target == "top" or (target is not None and target not in allowed):
                wrong.append(f"{rel} ({layer}) imports {imp} ({target})")
    assert wrong == []


@pytest.fixture
def no_qt(tmp_path: Path) -> dict[str, str]:
    """An environment where `import PySide6` fails, as on a server without Qt."""
    fake = tmp_path / "no-qt"
    for name in ("PySide6", "shiboken6"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed on this machine (test)')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(fake), str(ROOT), env.get("PYTHONPATH", "")])
    check = subprocess.run([sys.executable, "-c", "import PySide6"], env=env,
                           capture_output=True, text=True)
    assert check.returncode != 0 and "not installed on this machine" in check.stderr
    return env


@pytest.mark.slow
def test_index_search_and_status_run_without_qt(tmp_path, no_qt, starter_model):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "boiler.txt").write_text("The boiler service is booked for Tuesday morning.\n")
    (docs / "garden.md").write_text("# Garden\n\nPlant the tulip bulbs in October.\n")
    data = tmp_path / "data"

    def semdex(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "desktop.cli", "--data-dir", str(data),
                               *args], env=no_qt, cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    proc = semdex("index", str(docs), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files_indexed"] == 2
    for mode in ("semantic", "keyword", "hybrid"):
        proc = semdex("search", "when do I plant flower bulbs", "--mode", mode, "--json")
        assert proc.returncode == 0, proc.stderr
        if mode != "keyword":  # (BM25 needs a shared word: "plant")
            assert Path(json.loads(proc.stdout)["results"][0]["path"]).name == "garden.md"
    proc = semdex("status", "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["files"] == 2 and status["folders"][0]["path"] == str(docs)
    # and the window says why it cannot start, in one line
    proc = semdex()
    assert proc.returncode == 1 and "PySide6" in proc.stderr
    assert "work without it" in proc.stderr and "Traceback" not in proc.stderr
