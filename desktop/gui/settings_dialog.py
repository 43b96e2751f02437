"""Edit the settings in config.json: where the data lives, what to skip, how to run the model.

The dialog edits a copy of the Config; every change is checked with Config.problems(), so the
person reads the same sentences the file's loader would log, next to the Save button, and Save
stays disabled until the values are right. Fields this dialog does not show (search mode, task,
keys a newer Semdex wrote) are kept as they were.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.config import CHUNK_TOKENS_RANGE, MAX_PER_FILE, MAX_THREADS, Config, ConfigError
from desktop.extract.ocr import available as ocr_missing
from desktop.models import devices
from desktop.models.gpu import cpu_threads
from desktop.paths import default_data_dir

log = logging.getLogger(__name__)

# GPU layer choices: (label, value); "custom" takes the spin box's number
_AUTO, _ALL, _NONE, _CUSTOM = range(4)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class _DeviceBridge(QObject):
    listed = Signal(object)  # list[devices.Device]: the GPUs, best first


def _list_gpus(bridge: _DeviceBridge) -> None:
    """Off the GUI thread: starting a GPU backend (CUDA's context) takes a moment."""
    found, _ = devices.list_devices()
    try:
        bridge.listed.emit(devices.gpus(found))
    except RuntimeError:  # the dialog and its bridge are gone
        pass


class SettingsDialog(QDialog):
    """Edits a Config and saves it; emits settings_saved(Config) with the saved copy."""

    settings_saved = Signal(object)

    def __init__(self, config: Config, parent: QWidget | None = None, *,
                 path: Path | None = None):
        super().__init__(parent)
        self._original = config
        self._path = path
        self.setWindowTitle(self.tr("Settings"))
        self.resize(640, 720)
        self._build()
        self._show(config)
        self._check()

    # -- widgets ------------------------------------------------------------------------------

    def _build(self) -> None:
        files = QGroupBox(self.tr("Files"))
        form = QFormLayout(files)
        self.data_dir = QLineEdit()
        self.data_dir.setPlaceholderText(str(default_data_dir()))
        browse = QPushButton(self.tr("Browse…"))
        browse.clicked.connect(self._browse_data_dir)
        row = QHBoxLayout()
        row.addWidget(self.data_dir, 1)
        row.addWidget(browse)
        form.addRow(self.tr("Data folder:"), row)
        form.addRow("", self._hint(self.tr("Where the index is kept (empty: the default "
                                           "shown); a new folder starts an empty one. A "
                                           "team's shared index: s3://bucket/prefix.")))
        self.excludes = QPlainTextEdit()
        self.excludes.setPlaceholderText("*.tmp\nnode_modules\nPrivate")
        self.excludes.setMaximumHeight(90)
        form.addRow(self.tr("Skip these names:"), self.excludes)
        form.addRow("", self._hint(self.tr("One file or folder name per line; * and ? match any "
                                           "text. Hidden files are always skipped.")))
        self.model_folders = QPlainTextEdit()
        self.model_folders.setMaximumHeight(70)
        form.addRow(self.tr("Model folders:"), self.model_folders)
        form.addRow("", self._hint(self.tr("Folders with GGUF files, one per line, besides "
                                           "the usual places (Hugging Face, LM Studio, ...).")))
        self.polling = QCheckBox(self.tr("Check the folders by polling"))
        form.addRow("", self.polling)
        form.addRow("", self._hint(self.tr("For network drives and shares, where the system "
                                           "does not report changes. Uses more power.")))

        reading = QGroupBox(self.tr("Reading files"))
        form = QFormLayout(reading)
        self.ocr_pdfs = QCheckBox(self.tr("Read scanned PDF pages (OCR)"))
        self.ocr_images = QCheckBox(self.tr("Read text in images: .png, .jpg, .tiff, .webp (OCR)"))
        form.addRow("", self.ocr_pdfs)
        form.addRow("", self.ocr_images)
        missing = ocr_missing()
        form.addRow("", self._hint(
            self.tr("OCR is not available: {0}").format(missing) if missing else
            self.tr("Text is recognised here, on this computer; a page takes a few seconds. "
                    "Images are only indexed with this on.")))
        if missing:
            self.ocr_pdfs.setEnabled(False)
            self.ocr_images.setEnabled(False)
        self.max_text_mb = QDoubleSpinBox(decimals=1, suffix=" MB")
        self.max_text_mb.setRange(0.1, 1024)
        form.addRow(self.tr("Largest text per file:"), self.max_text_mb)
        self.timeout = QSpinBox(suffix=" s")
        self.timeout.setRange(5, 3600)
        form.addRow(self.tr("Time limit per file:"), self.timeout)
        form.addRow("", self._hint(self.tr("Files with more text are skipped, and a file that "
                                           "takes longer to read is given up on (a page of a "
                                           "scan counts on its own); both are listed with "
                                           "their reason.")))

        model = QGroupBox(self.tr("Model"))
        form = QFormLayout(model)
        self.device = QComboBox()
        self.device.addItem(self.tr("Automatic (the best GPU)"), None)
        self.device.addItem(self.tr("Processor only"), devices.CPU)
        form.addRow(self.tr("Compute device:"), self.device)
        form.addRow("", self._hint(self.tr("Automatic: the discrete GPU with the most free "
                                           "memory, else the processor.")))
        self._device_bridge = _DeviceBridge(self)
        self._device_bridge.listed.connect(self._add_gpus)
        QThreadPool.globalInstance().start(lambda b=self._device_bridge: _list_gpus(b))
        self.gpu_choice = QComboBox()
        self.gpu_choice.addItems([self.tr("Automatic (what fits)"), self.tr("All layers"),
                                  self.tr("None (processor only)"), self.tr("This many:")])
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(1, 999)
        self.gpu_choice.currentIndexChanged.connect(self._check)
        row = QHBoxLayout()
        row.addWidget(self.gpu_choice, 1)
        row.addWidget(self.gpu_layers)
        form.addRow(self.tr("GPU layers:"), row)
        form.addRow("", self._hint(self.tr("Automatic: as many layers as fit in the GPU's free "
                                           "memory when the model loads (all, some, or none "
                                           "without a GPU this build can use).")))
        lo, hi = CHUNK_TOKENS_RANGE
        self.chunk_tokens = QSpinBox()
        self.chunk_tokens.setRange(0, hi)
        self.chunk_tokens.setSingleStep(64)
        self.chunk_tokens.setSpecialValueText(self.tr("The model's own"))
        self.chunk_tokens.setSuffix(self.tr(" tokens"))
        form.addRow(self.tr("Passage length:"), self.chunk_tokens)
        form.addRow("", self._hint(self.tr("{0} to {1} tokens. Shorter passages point to the "
                                           "place more precisely; longer ones keep more "
                                           "context together.").format(lo, hi)))
        self.threads = QSpinBox()
        self.threads.setRange(0, MAX_THREADS)
        self.threads.setSpecialValueText(self.tr("Automatic ({0})").format(cpu_threads()))
        form.addRow(self.tr("Threads:"), self.threads)
        self.embed_url = QLineEdit()
        self.embed_url.setPlaceholderText(self.tr("This computer"))
        form.addRow(self.tr("Embedding server:"), self.embed_url)
        form.addRow("", self._hint(self.tr("Empty: the model runs here. Or a llama-server "
                                           "serving the same GGUF, such as "
                                           "http://gpu-box:8080/v1, embeds for it.")))

        search = QGroupBox(self.tr("Results"))
        form = QFormLayout(search)
        self.per_file = QSpinBox()
        self.per_file.setRange(0, MAX_PER_FILE)
        form.addRow(self.tr("Passages per file:"), self.per_file)

        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #b00020;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        # the groups scroll (taller than a laptop's screen); the problems and buttons stay put
        body = QWidget()
        groups = QVBoxLayout(body)
        groups.setContentsMargins(0, 0, 0, 0)
        for group in (files, reading, model, search):
            groups.addWidget(group)
        groups.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        root = QVBoxLayout(self)
        root.addWidget(scroll, 1)
        root.addWidget(self.problems)
        root.addWidget(self.buttons)
        for edit in (self.data_dir, self.embed_url):
            edit.textChanged.connect(self._check)
        for text in (self.excludes, self.model_folders):
            text.textChanged.connect(self._check)
        for spin in (self.gpu_layers, self.chunk_tokens, self.threads, self.per_file,
                     self.max_text_mb, self.timeout):
            spin.valueChanged.connect(self._check)

    def _hint(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        font = label.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        label.setFont(font)
        pal = label.palette()  # a quieter colour: two thirds of the way from background to text
        text = pal.color(QPalette.ColorRole.WindowText)
        back = pal.color(QPalette.ColorRole.Window)
        mix = [int(b + (t - b) * 0.67) for t, b in zip(text.getRgb()[:3], back.getRgb()[:3],
                                                          strict=True)]
        pal.setColor(QPalette.ColorRole.WindowText, QColor(*mix))
        label.setPalette(pal)
        return label

    def _show(self, c: Config) -> None:
        self.data_dir.setText(c.data_dir or "")
        self.excludes.setPlainText("\n".join(c.excludes))
        self.model_folders.setPlainText("\n".join(c.model_folders))
        self.polling.setChecked(bool(c.polling))
        self.ocr_pdfs.setChecked(bool(c.ocr_pdfs))
        self.ocr_images.setChecked(bool(c.ocr_images))
        self.max_text_mb.setValue(float(c.max_text_mb))
        self.timeout.setValue(int(c.extract_timeout_s))
        if c.gpu_layers is None:
            self.gpu_choice.setCurrentIndex(_AUTO)
        elif c.gpu_layers < 0:
            self.gpu_choice.setCurrentIndex(_ALL)
        elif c.gpu_layers == 0:
            self.gpu_choice.setCurrentIndex(_NONE)
        else:
            self.gpu_choice.setCurrentIndex(_CUSTOM)
            self.gpu_layers.setValue(c.gpu_layers)
        self._select_device(c.embedder_settings().device)
        self.chunk_tokens.setValue(c.chunk_tokens or 0)
        self.threads.setValue(c.threads or 0)
        self.per_file.setValue(c.per_file)
        self.embed_url.setText(c.embed_url or "")

    # -- reading and saving -------------------------------------------------------------------

    def config(self) -> Config:
        """A new Config: the widgets' values over the original's other fields."""
        c = copy.deepcopy(self._original)
        c.data_dir = self.data_dir.text().strip() or None
        c.excludes = _lines(self.excludes.toPlainText())
        c.model_folders = _lines(self.model_folders.toPlainText())
        c.polling = self.polling.isChecked()
        c.ocr_pdfs = self.ocr_pdfs.isChecked()
        c.ocr_images = self.ocr_images.isChecked()
        c.max_text_mb = round(self.max_text_mb.value(), 1)
        c.extract_timeout_s = float(self.timeout.value())
        choice = self.gpu_choice.currentIndex()
        c.gpu_layers = {_AUTO: None, _ALL: -1, _NONE: 0}.get(choice, self.gpu_layers.value())
        c.device = self.device.currentData()
        c.chunk_tokens = self.chunk_tokens.value() or None
        c.threads = self.threads.value() or None
        c.per_file = self.per_file.value()
        c.embed_url = self.embed_url.text().strip() or None
        return c

    def _select_device(self, name: str | None) -> None:
        at = self.device.findData(name)
        if at < 0:  # set before, not (yet) listed: kept, and said so
            self.device.addItem(self.tr("{0} (not found)").format(name), name)
            at = self.device.count() - 1
        self.device.setCurrentIndex(at)

    def _add_gpus(self, found: list) -> None:
        chosen = self.device.currentData()
        for dev in found:
            at = self.device.findData(dev.name)
            label = self.tr("{0}: {1}, {2:.1f} GiB free").format(
                dev.backend, dev.label(), dev.free_bytes / 2**30)
            if at < 0:
                self.device.addItem(label, dev.name)
            else:
                self.device.setItemText(at, label)
        self._select_device(chosen)

    def problem_texts(self) -> list[str]:
        return list(self.config().problems().values())

    def _check(self) -> None:
        self.gpu_layers.setEnabled(self.gpu_choice.currentIndex() == _CUSTOM)
        problems = self.problem_texts()
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(not problems)

    def save(self) -> bool:
        """Validate, write the file, emit settings_saved and close; False when it could not."""
        config = self.config()
        try:
            config.save(self._path)
        except ConfigError as exc:
            self.problems.setText("\n".join(exc.problems.values()))
            self.problems.show()
            return False
        except OSError as exc:
            log.warning("cannot save the settings: %s", exc)
            self.problems.setText(self.tr("The settings could not be saved: {0}").format(exc))
            self.problems.show()
            return False
        self.settings_saved.emit(config)
        self.accept()
        return True

    def _browse_data_dir(self) -> None:
        start = self.data_dir.text().strip() or str(default_data_dir())
        folder = QFileDialog.getExistingDirectory(self, self.tr("Data folder"), start)
        if folder:
            self.data_dir.setText(folder)
