"""The model picker, with real GGUF files and real discovery (the settings dialog and the log
view: tests/test_gui_settings.py)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QDialog  # noqa: E402

from desktop.config import Config  # noqa: E402
from desktop.gui import model_picker  # noqa: E402
from desktop.gui.model_picker import ModelPickerDialog  # noqa: E402
from desktop.models.discovery import Locations  # noqa: E402
from desktop.models.memory import Verdict  # noqa: E402
from tests.fixtures.tiny_gguf import write_tiny_llama, write_truncated  # noqa: E402

STARTER = "all-MiniLM-L6-v2-F16"
CHAT = "SmolLM2-135M-Instruct"
LOAD_TIMEOUT_MS = 15000
CHECK_TIMEOUT_MS = 60000


def _link_or_copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # a second name for the same bytes: what a copy would hold
    except OSError:
        shutil.copy(src, dst)
    return dst


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, starter_model: Path) -> Path:
    """A folder with the real starter, a download cut short, and a chat model."""
    folder = tmp_path_factory.mktemp("models")
    _link_or_copy(starter_model, folder / f"{STARTER}.gguf")
    write_truncated(starter_model, folder / "broken.gguf")
    write_tiny_llama(folder / f"{CHAT}.gguf", name=CHAT)
    return folder.resolve()


@pytest.fixture
def config() -> Config:
    """Saved to the test's own config dir (tests/conftest.py)."""
    return Config()


def _open(qtbot, config: Config, current: str | None = None, **kw) -> ModelPickerDialog:
    kw.setdefault("locations", Locations())
    dialog = ModelPickerDialog(config, current, **kw)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _loaded(qtbot, config: Config, current: str | None = None, **kw) -> ModelPickerDialog:
    dialog = _open(qtbot, config, current, **kw)
    with qtbot.waitSignal(dialog.models_loaded, timeout=LOAD_TIMEOUT_MS):
        pass
    return dialog


def _by_name(dialog: ModelPickerDialog) -> dict[str, dict]:
    return {r["name"]: r for r in dialog.rows()}


def test_lists_usable_and_unusable_models_with_their_fit(qtbot, config, models_dir):
    config.model_folders = [str(models_dir)]
    dialog = _loaded(qtbot, config)
    rows = _by_name(dialog)
    assert set(rows) == {STARTER, "broken", CHAT}
    assert [r["name"] for r in dialog.rows()][0] == STARTER  # usable first

    starter = rows[STARTER]
    assert starter["usable"] and starter["family"] == "all-minilm"
    assert (starter["dims"], starter["quantisation"], starter["context"]) == ("384", "F16", "512")
    assert starter["parameters"] == "23M" and starter["size"] == "46 MB"
    assert starter["source"] == "Folder" and starter["licence"] == "apache-2.0"
    assert isinstance(starter["verdict"], Verdict)
    assert starter["fit"].startswith(("fits on the GPU", "fits with partial offload", "CPU only"))
    assert "tokens/s" in starter["fit"]
    assert dialog.gpu() is not None
    assert dialog.gpu().describe() in dialog.accelerator.text()

    broken, chat = rows["broken"], rows[CHAT]
    assert not broken["usable"] and "truncated" in broken["problem"]
    assert broken["fit"].startswith("Not usable: truncated")
    assert not chat["usable"] and "chat or text-generation model" in chat["problem"]
    model = dialog.models
    for i, row in enumerate(dialog.rows()):  # unusable rows are greyed, the reason in a tooltip
        index = model.index(i, 0)
        grey = model.data(index, Qt.ItemDataRole.ForegroundRole)
        assert (grey is None) == row["usable"]
        assert (row["problem"] or row["path"]) in model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert "3 GGUF files found, 1 usable" in dialog.status.text()

    labels = {r["label"]: r for r in dialog.catalogue_rows()}
    assert {"E5-Mistral-7B-Instruct", "SFR-Embedding-Mistral", "Qwen3-Embedding-8B",
            "bge-small-en-v1.5"} <= set(labels)
    assert "all-MiniLM-L6-v2 (starter)" not in labels  # a usable copy is here
    e5 = labels["E5-Mistral-7B-Instruct"]
    assert e5["nfcorpus"] == "0.386" and e5["file"] == "Q4_K_M, 4.4 GB" and e5["dims"] == "4096"
    assert e5["where"] == "second-state/E5-Mistral-7B-Instruct-Embedding-GGUF"
    assert isinstance(e5["verdict"], Verdict) and e5["fit"]


def test_use_emits_the_chosen_model(qtbot, config, models_dir):
    config.model_folders = [str(models_dir)]
    dialog = _loaded(qtbot, config)
    names = [r["name"] for r in dialog.rows()]
    dialog.table.selectRow(names.index("broken"))
    assert not dialog.use_button.isEnabled()
    assert "truncated" in dialog.details.text()
    dialog.table.selectRow(names.index(CHAT))
    assert not dialog.use_button.isEnabled()
    dialog.table.selectRow(names.index(STARTER))
    assert dialog.use_button.isEnabled()
    # the first use of a file is a trial load in a child process (desktop/models/model_check.py)
    with qtbot.waitSignal(dialog.model_chosen, timeout=CHECK_TIMEOUT_MS) as chosen:
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert chosen.args == [str(models_dir / f"{STARTER}.gguf"), "all-minilm"]
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_discovery_runs_off_the_gui_thread(qtbot, config, models_dir, monkeypatch):
    """The dialog is shown and handles events while discovery is still walking."""
    config.model_folders = [str(models_dir)]
    started, release = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    real_survey = model_picker.survey  # discovery, GPU detection and the estimates

    def slow_survey(*args, **kwargs):
        threads.append(threading.current_thread())
        started.set()
        release.wait(10)  # a big folder on a slow disk
        return real_survey(*args, **kwargs)

    monkeypatch.setattr(model_picker, "survey", slow_survey)
    dialog = _open(qtbot, config)
    qtbot.waitUntil(started.is_set, timeout=5000)
    ticks: list[int] = []
    QTimer.singleShot(0, lambda: ticks.append(1))
    qtbot.waitUntil(lambda: bool(ticks), timeout=1000)  # the event loop is running
    assert dialog.isVisible() and dialog.is_loading() and dialog.rows() == []
    assert "Looking for GGUF files" in dialog.status.text() and dialog.busy.isVisible()
    assert not dialog.use_button.isEnabled()
    with qtbot.waitSignal(dialog.models_loaded, timeout=LOAD_TIMEOUT_MS):
        release.set()
    assert threads and threads[0] is not threading.main_thread()
    assert not dialog.is_loading() and not dialog.busy.isVisible() and len(dialog.rows()) == 3


def test_add_folder_saves_it_and_looks_again(qtbot, config, models_dir):
    dialog = _loaded(qtbot, config)
    assert dialog.rows() == [] and "No GGUF files found" in dialog.status.text()
    starter = {r["label"]: r for r in dialog.catalogue_rows()}["all-MiniLM-L6-v2 (starter)"]
    assert starter["where"].startswith("built in")
    with qtbot.waitSignal(dialog.models_loaded, timeout=LOAD_TIMEOUT_MS):
        dialog.add_folder(str(models_dir))
    assert len(dialog.rows()) == 3
    assert Config.load().model_folders == [str(models_dir)]


def test_usual_places_and_the_current_model(qtbot, config, models_dir, tmp_path, monkeypatch):
    for name in ("HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS", "SEMDEX_MODEL_CACHE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    lms = home / ".lmstudio" / "models" / "second-state" / "All-MiniLM-L6-v2-Embedding-GGUF"
    current = _link_or_copy(models_dir / f"{STARTER}.gguf", lms / "all-MiniLM-L6-v2-Q8.gguf")
    dialog = _loaded(qtbot, config, str(current), locations=None, home=home)
    rows = dialog.rows()
    assert len(rows) == 1
    assert rows[0]["source"] == "LM Studio" and rows[0]["current"]
    assert rows[0]["name"] == "second-state/All-MiniLM-L6-v2-Embedding-GGUF"
    index = dialog.models.index(0, 0)
    assert dialog.models.data(index).endswith("(in use)")
    assert dialog.models.data(index, Qt.ItemDataRole.FontRole).bold()
    assert dialog.selected_path() == str(current) and dialog.use_button.isEnabled()


def test_a_file_that_crashes_llama_cpp_is_tried_apart_and_marked(qtbot, config, tmp_path):
    """"Use this model" on a file never tried: it is loaded in a child process first; llama.cpp
    aborts there, the row turns unusable with the reason, and nothing is switched."""
    from tests.test_model_check import write_aborting_llama

    folder = tmp_path / "models"
    bad = write_aborting_llama(folder / "e5-mistral-crash.gguf")
    config.model_folders = [str(folder)]
    dialog = _loaded(qtbot, config)
    row = dialog.rows()[0]
    assert row["usable"], row  # the header is fine: only trying it shows the problem
    dialog.table.selectRow(0)
    chosen = []
    dialog.model_chosen.connect(lambda *a: chosen.append(a))
    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert dialog.is_checking() and not dialog.use_button.isEnabled()
    assert "Trying e5-mistral-crash" in dialog.status.text()
    qtbot.waitUntil(lambda: not dialog.is_checking(), timeout=CHECK_TIMEOUT_MS)
    row = dialog.rows()[0]
    assert not row["usable"] and "GGML_ASSERT" in row["problem"]
    assert row["fit"].startswith("Not usable: llama.cpp aborted")
    assert "cannot be used" in dialog.status.text() and "GGML_ASSERT" in dialog.status.text()
    assert chosen == [] and dialog.isVisible()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.use_button.isEnabled() and dialog.use_button.text() == "Try Again"
    grey = dialog.models.data(dialog.models.index(0, 0), Qt.ItemDataRole.ForegroundRole)
    assert grey is not None

    # remembered: the next time the picker opens, the file is greyed out from the start
    again = _loaded(qtbot, config)
    row = again.rows()[0]
    assert row["path"] == str(bad.resolve()) and not row["usable"]
    assert "failed Semdex's trial load" in row["problem"] and "GGML_ASSERT" in row["problem"]
    assert "0 usable" in again.status.text()
    again.table.selectRow(0)
    assert again.use_button.text() == "Try Again" and again.use_button.isEnabled()
    qtbot.mouseClick(again.use_button, Qt.MouseButton.LeftButton)  # tried anew, in a child
    assert again.is_checking()
    qtbot.waitUntil(lambda: not again.is_checking(), timeout=CHECK_TIMEOUT_MS)
    assert "cannot be used" in again.status.text() and not again.rows()[0]["usable"]
