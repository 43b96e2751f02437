"""The settings file (config.py) and the log file (logs.py): both must never stop the app."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

import pytest

from desktop import logs
from desktop.config import Config, ConfigError, config_path


@pytest.fixture
def config_dir(semdex_dirs) -> Path:
    """The test's own config dir, SEMDEX_CONFIG_DIR (tests/conftest.py)."""
    return semdex_dirs.config


def test_env_override_and_default_location(config_dir, monkeypatch):
    assert config_path() == config_dir / "config.json"
    monkeypatch.delenv("SEMDEX_CONFIG_DIR")
    assert config_path().parts[-2:] == ("semdex", "config.json")


def test_missing_file_gives_defaults(config_dir):
    config, notes = Config.load_with_notes()
    assert config == Config() and notes == []
    assert config.search_mode == "hybrid" and config.task == "general" and config.per_file == 3
    assert not config_dir.exists()  # loading writes nothing


def test_round_trip(config_dir):
    config = Config(data_dir="/data/semdex", excludes=["*.tmp", "node_modules"], gpu_layers=20,
                    chunk_tokens=384, threads=4, model_folders=["/models"], polling=True,
                    search_mode="semantic", task="qa", custom_instruction="Find invoices",
                    per_file=2)
    path = config.save()
    assert path == config_dir / "config.json"
    assert json.loads(path.read_text("utf-8"))["version"] == 1
    assert Config.load() == config
    assert [p.name for p in config_dir.iterdir()] == ["config.json"]  # no temp file left


@pytest.mark.parametrize("text", ["{not json", "[1, 2, 3]", "\x00\xff garbage", ""])
def test_damaged_file_is_kept_aside(config_dir, text):
    config_dir.mkdir()
    path = config_dir / "config.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    config, notes = Config.load_with_notes()
    assert config == Config()
    assert len(notes) == 1 and "damaged" in notes[0]
    damaged = config_dir / "config.json.damaged"
    assert damaged.read_text(encoding="utf-8", errors="surrogateescape") == text
    assert not path.exists()
    Config(threads=2).save()  # and the next save works
    assert Config.load().threads == 2


def test_wrong_values_fall_back_one_by_one(config_dir):
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({
        "threads": 0, "chunk_tokens": "big", "excludes": "*.tmp", "search_mode": "fuzzy",
        "per_file": 5, "polling": True, "model_folders": ["/models"]}))
    config, notes = Config.load_with_notes()
    assert (config.threads, config.chunk_tokens, config.excludes, config.search_mode) == (
        None, None, [], "hybrid")
    assert (config.per_file, config.polling, config.model_folders) == (5, True, ["/models"])
    assert len(notes) == 4 and all("default is used" in n for n in notes)


def test_newer_file_loads_and_its_keys_survive_a_save(config_dir):
    config_dir.mkdir()
    path = config_dir / "config.json"
    path.write_text(json.dumps({"version": 7, "threads": 6, "theme": "dark",
                                "reranker": {"model": "x.gguf"}}))
    config, notes = Config.load_with_notes()
    assert config.threads == 6 and notes == []
    assert not hasattr(config, "theme")
    assert config == Config(threads=6)  # unknown keys take no part in equality
    config.per_file = 4
    config.save()
    raw = json.loads(path.read_text("utf-8"))
    assert raw["theme"] == "dark" and raw["reranker"] == {"model": "x.gguf"}
    assert raw["per_file"] == 4 and raw["threads"] == 6


@pytest.mark.parametrize(("field", "value", "words"), [
    ("threads", 0, "Threads must be at least 1"),
    ("threads", "4", "Threads must be at least 1"),
    ("chunk_tokens", 8, "between 16 and 8192"),
    ("chunk_tokens", 9000, "between 16 and 8192"),
    ("gpu_layers", -2, "GPU layers must be"),
    ("search_mode", "fuzzy", "semantic, keyword, hybrid"),
    ("task", "poetry", "Task must be one of"),
    ("per_file", 0, "between 1 and"),
    ("excludes", ["docs/old"], "not paths"),
    ("excludes", [""], "not paths"),
    ("model_folders", "/models", "list of text lines"),
    ("data_dir", "  ", "data folder"),
    ("polling", "yes", "on or off"),
])
def test_validation_says_what_is_wrong(config_dir, field, value, words):
    config = Config(**{field: value})
    problems = config.problems()
    assert list(problems) == [field] and words in problems[field]
    with pytest.raises(ConfigError) as err:
        config.save()
    assert err.value.problems == problems and words in str(err.value)
    assert not (config_dir / "config.json").exists()


@pytest.mark.parametrize(("field", "value"), [
    ("threads", 1), ("chunk_tokens", 16), ("chunk_tokens", 8192), ("gpu_layers", -1),
    ("gpu_layers", 0), ("gpu_layers", 33), ("excludes", ["*.tmp", "node_modules"]),
])
def test_edge_values_are_valid(field, value):
    assert Config(**{field: value}).problems() == {}


def test_search_modes_and_tasks_match_the_core():
    from desktop.models.profiles import TASKS
    from desktop.search import MODES

    assert all(Config(search_mode=m).problems() == {} for m in MODES)
    assert "search_mode" in Config(search_mode="fuzzy").problems()
    assert all(Config(task=t).problems() == {} for t in TASKS)


# -- logs --------------------------------------------------------------------------------------


@pytest.fixture
def log_dir(semdex_dirs):
    """The test's own log dir, SEMDEX_LOG_DIR (tests/conftest.py); logging is undone after."""
    yield semdex_dirs.logs
    logs.teardown_logging()


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers
            if isinstance(h, logging.handlers.RotatingFileHandler)]


def test_setup_logging_writes_a_rotating_file_once(log_dir):
    path = logs.setup_logging()
    assert path == log_dir / "semdex.log" == logs.log_path()
    assert logs.setup_logging(verbose=True) == path  # idempotent: still one handler
    handlers = _ours()
    assert len(handlers) == 1
    assert handlers[0].maxBytes == 1 << 20 and handlers[0].backupCount == 3
    logging.getLogger("desktop.test").debug("a debug line")
    logging.getLogger("desktop.test").warning("the boiler is on fire")
    text = path.read_text("utf-8")
    assert "WARNING" in text and "desktop.test" in text and "the boiler is on fire" in text
    assert "a debug line" in text  # verbose
    logs.teardown_logging()
    assert _ours() == []


def test_uncaught_exceptions_are_logged(log_dir, monkeypatch):
    # Stand-ins for the hooks pytest and pytest-qt install, which would fail the test.
    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, exc, tb: seen.append(str(exc)))
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.thread.name))
    path = logs.setup_logging()
    try:
        raise ValueError("nobody caught me")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    assert seen == ["nobody caught me"]  # the previous hook still ran
    thread = threading.Thread(target=lambda: 1 / 0, name="worker-7")
    thread.start()
    thread.join()
    assert seen == ["nobody caught me", "worker-7"]
    text = path.read_text("utf-8")
    assert "CRITICAL" in text and "ValueError: nobody caught me" in text
    assert "uncaught exception in thread worker-7" in text and "ZeroDivisionError" in text
    hook = sys.excepthook
    logs.teardown_logging()
    assert sys.excepthook is not hook


def test_unwritable_log_dir_does_not_crash(tmp_path, monkeypatch, capsys):
    """The log folder cannot be made: setup says so on stderr, and records go to stderr."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SEMDEX_LOG_DIR", str(blocker / "logs"))
    try:
        assert logs.setup_logging() == blocker / "logs" / "semdex.log"
        assert _ours() == []
        logging.getLogger("desktop.test").warning("the boiler is on fire")
    finally:
        logs.teardown_logging()
    err = capsys.readouterr().err
    assert f"cannot write the log file {blocker / 'logs' / 'semdex.log'}" in err
    assert "WARNING" in err and "desktop.test" in err and "the boiler is on fire" in err
    assert not (blocker / "logs").exists()
