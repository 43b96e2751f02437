"""The settings dialog and the log view, on the test's own config dir and a real log file."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QDialog, QDialogButtonBox  # noqa: E402

from desktop.config import Config  # noqa: E402
from desktop.gui.log_view import LogView  # noqa: E402
from desktop.gui.settings_dialog import SettingsDialog  # noqa: E402


@pytest.fixture
def config() -> Config:
    """Saved to the test's own config dir (tests/conftest.py)."""
    return Config()


# -- settings ----------------------------------------------------------------------------------


def _save_button(dialog: SettingsDialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Save)


def test_settings_dialog_saves_to_the_config_file(qtbot, config):
    config.search_mode = "keyword"  # not on the dialog: kept as it was
    config.excludes = ["*.tmp"]
    dialog = SettingsDialog(config)
    qtbot.addWidget(dialog)
    assert dialog.excludes.toPlainText() == "*.tmp"
    dialog.threads.setValue(3)
    dialog.excludes.setPlainText("*.tmp\n\nnode_modules\n")
    dialog.gpu_choice.setCurrentIndex(3)
    dialog.gpu_layers.setValue(12)
    dialog.polling.setChecked(True)
    with qtbot.waitSignal(dialog.settings_saved, timeout=1000) as saved:
        qtbot.mouseClick(_save_button(dialog), Qt.MouseButton.LeftButton)
    on_disk = Config.load()
    assert on_disk == saved.args[0]
    assert (on_disk.threads, on_disk.gpu_layers, on_disk.polling) == (3, 12, True)
    assert on_disk.excludes == ["*.tmp", "node_modules"] and on_disk.search_mode == "keyword"
    assert config.threads is None  # the caller's object is left alone
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_settings_dialog_shows_the_configs_messages(qtbot, semdex_dirs):
    dialog = SettingsDialog(Config(gpu_layers=0, chunk_tokens=512))
    qtbot.addWidget(dialog)
    assert dialog.gpu_choice.currentIndex() == 2 and not dialog.gpu_layers.isEnabled()
    assert _save_button(dialog).isEnabled()
    dialog.chunk_tokens.setValue(8)
    dialog.excludes.setPlainText("Documents/old")
    dialog.embed_url.setText("gpu-box:8080")  # no scheme
    problems = dialog.config().problems()
    assert set(problems) == {"chunk_tokens", "excludes", "embed_url"}
    assert "http:// or https://" in problems["embed_url"]
    assert not _save_button(dialog).isEnabled()
    assert dialog.problems.text().splitlines() == list(problems.values())
    assert not dialog.save() and not semdex_dirs.config.exists()
    dialog.chunk_tokens.setValue(0)  # "the model's own"
    dialog.excludes.setPlainText("old")
    dialog.gpu_choice.setCurrentIndex(0)
    dialog.embed_url.setText(" http://gpu-box:8080/v1 ")
    assert _save_button(dialog).isEnabled() and dialog.save()
    assert (Config.load().chunk_tokens, Config.load().gpu_layers) == (None, None)
    assert Config.load().embed_url == "http://gpu-box:8080/v1"
    assert Config.load().embedder_settings().embed_url == "http://gpu-box:8080/v1"


# -- log view ----------------------------------------------------------------------------------


def test_log_view_follows_the_file(qtbot, tmp_path):
    path = tmp_path / "semdex.log"
    path.write_text("2025-01-01 10:00:00 INFO    desktop.engine: first line\n", "utf-8")
    view = LogView(path)
    qtbot.addWidget(view)
    view.show()
    assert "first line" in view.text.toPlainText() and view.text.isReadOnly()
    with path.open("a", encoding="utf-8") as f:
        f.write("2025-01-01 10:00:01 WARNING desktop.engine: second line\n")
    qtbot.waitUntil(lambda: "second line" in view.text.toPlainText(), timeout=5000)
    path.rename(tmp_path / "semdex.log.1")  # rotation
    path.write_text("after rotation\n", "utf-8")
    qtbot.waitUntil(lambda: view.text.toPlainText() == "after rotation\n", timeout=5000)
    missing = LogView(tmp_path / "nothing.log")
    qtbot.addWidget(missing)
    assert "No log yet" in missing.text.toPlainText()


def test_the_compute_device_is_chosen_and_kept(qtbot, config):
    """Automatic, the processor, or a device by name: a device set before but not found now
    (a GPU unplugged) stays chosen and says so, rather than being silently replaced. The GPUs
    this build has are listed off the GUI thread; on CI's CPU build there are none."""
    from desktop.models import devices

    config.device = "Vulkan7"
    dialog = SettingsDialog(config)
    qtbot.addWidget(dialog)
    assert dialog.device.currentText() == "Vulkan7 (not found)"
    found, _ = devices.list_devices()
    gpus = devices.gpus(found)
    qtbot.waitUntil(lambda: dialog.device.count() == 3 + len(gpus), timeout=5000)
    assert dialog.device.currentData() == "Vulkan7"
    dialog._add_gpus([devices.Device("CUDA0", "NVIDIA Test", "CUDA", "gpu", 6 << 30, 8 << 30)])
    assert "CUDA: NVIDIA Test (CUDA0), 6.0 GiB free" in [
        dialog.device.itemText(i) for i in range(dialog.device.count())]
    assert dialog.device.currentData() == "Vulkan7"  # the choice survives the list
    dialog.device.setCurrentIndex(dialog.device.findData(devices.CPU))
    with qtbot.waitSignal(dialog.settings_saved, timeout=1000):
        qtbot.mouseClick(_save_button(dialog), Qt.MouseButton.LeftButton)
    assert Config.load().device == "cpu"
    again = SettingsDialog(Config.load())
    qtbot.addWidget(again)
    again.device.setCurrentIndex(0)
    assert again.config().device is None  # automatic
