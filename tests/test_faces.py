"""One core, two faces: what the person sets in the window's settings (config.json) holds for
every `semdex` command too, flags override it, and what was wrong with the file reaches the
person on both faces; the core's rules (folders in the library, who writes) are the same from
either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop import cli
from desktop.config import Config
from desktop.engine import Engine
from desktop.index.lock import DataDirBusy
from desktop.index.state import State
from desktop.index.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path, monkeypatch) -> dict[str, Path]:
    """A person's machine: settings folder, default data dir, and a folder of documents."""
    dirs = {name: tmp_path / name for name in ("config", "default-data", "docs")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("SEMDEX_CONFIG_DIR", str(dirs["config"]))
    monkeypatch.setenv("SEMDEX_DATA_DIR", str(dirs["default-data"]))
    docs = dirs["docs"]
    (docs / "boiler.txt").write_text("The boiler service is booked for Tuesday morning.\n")
    (docs / "tulips.md").write_text("# Garden\n\nPlant the tulip bulbs in October.\n")
    (docs / "diary.secret").write_text("Tuesday: the boiler again, and my secret plans.\n")
    return dirs


def semdex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env=dict(os.environ))


@pytest.mark.slow
def test_the_cli_uses_the_settings_data_folder_and_excludes(home, tmp_path, starter_model):
    chosen = tmp_path / "chosen-data"
    Config(data_dir=str(chosen), excludes=["*.secret"], search_mode="keyword").save()
    proc = semdex("index", str(home["docs"]), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files_indexed"] == 2  # diary.secret is excluded
    status = json.loads(semdex("status", "--json").stdout)
    assert status["data_dir"] == str(chosen.resolve()) and status["files"] == 2
    assert not (home["default-data"] / "state.json").exists()
    # the settings' search mode is the default one; a flag overrides it
    out = json.loads(semdex("search", "boiler", "--json").stdout)
    assert out["mode"] == "keyword" and Path(out["results"][0]["path"]).name == "boiler.txt"
    assert json.loads(semdex("search", "boiler", "--mode", "semantic", "--json").stdout)[
        "mode"] == "semantic"
    # --data-dir overrides the settings' folder; --exclude adds to the settings' names
    other = tmp_path / "other-data"
    proc = semdex("--data-dir", str(other), "index", str(home["docs"]), "--exclude", "*.md",
                  "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files_indexed"] == 1  # boiler.txt alone
    assert json.loads(semdex("--data-dir", str(other), "status", "--json").stdout)[
        "data_dir"] == str(other.resolve())


def test_threads_and_gpu_layers_from_the_settings_reach_the_engine(home, starter_model):
    Config(threads=3, gpu_layers=0, chunk_tokens=48).save()

    def engine_for(*argv: str) -> Engine:
        args = cli.build_parser().parse_args(list(argv))
        return cli._engine(args)

    with engine_for("status") as engine:
        s = engine.settings
        assert (s.threads, s.gpu_layers, s.chunk_tokens) == (3, 0, 48)
    with engine_for("index", "--threads", "1", "--gpu-layers", "-1", "--chunk-tokens", "32",
                    str(home["docs"])) as engine:
        s = engine.settings
        assert (s.threads, s.gpu_layers, s.chunk_tokens) == (1, -1, 32)


def test_a_damaged_settings_file_is_told_on_the_command_line(home, starter_model):
    path = home["config"] / "config.json"
    path.write_text("{ not json", encoding="utf-8")
    proc = semdex("status", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "note: The settings file was damaged" in proc.stderr
    assert json.loads(proc.stdout)["data_dir"] == str(home["default-data"].resolve())
    assert (home["config"] / "config.json.damaged").exists()
    # a wrong value is told too, and its default used
    path.write_text(json.dumps({"threads": "many"}), encoding="utf-8")
    proc = semdex("status")
    assert proc.returncode == 0 and "note: Threads must be at least 1" in proc.stderr


@pytest.mark.slow
def test_removing_a_folder_is_the_same_rule_from_the_cli(home, starter_model):
    docs = home["docs"]
    assert semdex("index", str(docs)).returncode == 0
    proc = semdex("remove", str(docs / "nope"))
    assert proc.returncode == 1 and "not in the library" in proc.stderr
    proc = semdex("remove", str(docs), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == [{"path": str(docs), "files_forgotten": 2}]
    status = json.loads(semdex("status", "--json").stdout)
    assert status["folders"] == [] and status["files"] == 0 and status["passages"] == 0
    assert all(p.exists() for p in docs.iterdir())  # the files themselves stay
    # a folder inside the data folder is refused by the core, for both faces
    inner = home["default-data"] / "inside"
    inner.mkdir()
    proc = semdex("index", str(inner))
    assert proc.returncode == 1 and "inside Semdex's own data folder" in proc.stderr


def test_state_is_saved_only_under_the_writer_lock(home, starter_model):
    docs = home["docs"]
    with Engine(model=starter_model) as engine:
        with pytest.raises(RuntimeError, match="only under the writer lock"):
            engine._save_state()
        before = (engine.data_dir / "state.json").exists()
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\nfrom desktop.index.lock import WriterLock\n"
             f"l = WriterLock(__import__('pathlib').Path({str(engine.data_dir)!r}), 'watch')\n"
             "l.acquire(); print('held', flush=True); time.sleep(30)"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(DataDirBusy):
                engine.add_folders([docs])
            with pytest.raises(DataDirBusy):
                engine.remember_model()
        finally:
            holder.kill()
            holder.wait()
        assert (engine.data_dir / "state.json").exists() == before
        assert engine.add_folders([docs]) == [str(docs)]
        assert list(State.load(engine.data_dir).folders) == [str(docs)]


def test_a_search_never_builds_the_full_text_index(home, starter_model):
    """Only the writer builds it; a reader (another process without the lock) searches the
    rows as they are, the unindexed ones included."""
    with Engine(model=starter_model) as engine:
        list(engine.index([home["docs"]]))
        store = engine.store
        assert [i.name for i in store.chunks.list_indices()] == ["text_idx"]
        store.chunks.drop_index("text_idx")
        reader = Store(store.db_dir, store.key, store.dims)
        hits = reader.keyword_search("tulip", 5)
        assert [Path(h["path"]).name for h in hits] == ["tulips.md"]
        assert reader.chunks.list_indices() == []  # the search wrote nothing
        out = json.loads(semdex("search", "tulip", "--mode", "keyword", "--json").stdout)
        assert Path(out["results"][0]["path"]).name == "tulips.md"
        assert reader.chunks.list_indices() == []
