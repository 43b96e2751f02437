"""Choose the embedding model: what is on this machine, whether it fits, and what would be better.

Discovery walks the usual model folders and reads every GGUF header it finds; on a machine with
a big Hugging Face cache that takes a while, so it runs on a pool thread together with GPU
detection and the memory estimates (desktop.models.survey, which `semdex models` uses too), and
the dialog shows the result, worded for people, when it arrives. Files Semdex cannot use stay
in the list, greyed, with the reason: a person who downloaded a chat model by mistake should
learn why it is not offered. Below them, the catalogue's recommendations that are not here
yet, with where to find them as plain text (Semdex downloads nothing and opens no link by
itself).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.config import Config, ConfigError
from desktop.models.discovery import SOURCE_LABELS, Locations
from desktop.models.gpu import GpuInfo
from desktop.models.memory import Verdict
from desktop.models.model_check import CheckResult
from desktop.models.survey import ChatDescription, ModelDescription, Suggestion, Survey, survey
from desktop.models.units import rate_text, size_text

log = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex


# -- rows: the survey's descriptions with text for people ---------------------------------------


def fit_text(v: Verdict) -> str:
    """The verdict in a table cell: where it runs, and how fast."""
    if v.placement == "too_big":
        return v.summary
    return f"{v.summary}, about {rate_text(v.tokens_per_s)} tokens/s"


def _dash(value: object) -> str:
    return "—" if value in (None, "") else str(value)


def _model_row(d: ModelDescription) -> dict[str, Any]:
    """One discovered file as the table shows it (what `semdex models` prints, for people)."""
    m, info = d.model, d.model.info
    row: dict[str, Any] = {
        "path": str(m.path), "usable": d.usable, "current": d.active, "problem": m.problem,
        "retry": d.retryable, "family": m.family, "name": m.name,
        "family_text": _dash(m.profile.label if m.profile else None),
        "parameters": _dash(info.size_label if info else None),
        "quantisation": _dash(info.quantization if info else None),
        "dims": _dash(info.embedding_length if info else None),
        "context": _dash(info.context_length if info else None),
        "size": size_text(d.size_bytes),
        "licence": _dash(info.license if info else None),
        "source": m.source_label, "verdict": d.verdict,
    }
    details = [str(m.path)]
    details += [f"also at {place} ({SOURCE_LABELS.get(src, src)})" for src, place in m.also_at]
    if d.verdict is not None and m.profile is not None:
        p, v = m.profile, d.verdict
        row["fit"] = fit_text(v)
        details.append(f"{p.label}, family {p.family}, pooling {p.pooling_name}: {v.describe()}")
    else:
        row["fit"] = f"Not usable: {m.problem or 'not an embedding model'}"
        details.append(row["fit"])
    row["details"] = "\n".join(details)
    return row


def _chat_row(c: ChatDescription) -> dict[str, Any]:
    """A chat model (for Ask) as its table shows it."""
    m, info = c.model, c.model.info
    row: dict[str, Any] = {
        "path": str(m.path), "usable": c.usable, "current": c.chosen, "name": m.name,
        "template": _dash(m.chat.family if m.chat else None),
        "parameters": _dash(info.size_label if info else None),
        "quantisation": _dash(info.quantization if info else None),
        "context": f"{c.context:,}" if c.context else "—",
        "size": size_text(m.size_bytes), "source": m.source_label,
    }
    if c.usable and c.verdict is not None and c.estimate is not None:
        row["fit"] = fit_text(c.verdict)
        row["together"] = c.together or "—"
        kv = c.estimate.kv_bytes / max(1, c.context) / 1024
        row["details"] = (f"{m.path}\n{m.chat.family if m.chat else ''} template; context "
                          f"{c.context:,} tokens, KV cache {kv:.0f} KiB a token; "
                          f"{c.verdict.describe()}" + (f"; {c.together}" if c.together else ""))
    else:
        row["fit"] = f"Not usable: {m.chat_problem or m.problem or 'no chat template'}"
        row["together"] = "—"
        row["details"] = f"{m.path}\n{row['fit']}"
    return row


def _catalogue_row(s: Suggestion) -> dict[str, Any]:
    c, v = s.entry, s.verdict
    quant = c.recommended_quant()
    where = c.gguf_sources[0] if c.gguf_sources else (
        "built in (made on first use)" if c.builtin else c.source_note)
    details = [f"{c.label}: {c.parameters_text} parameters, {c.dims} dims, {c.context} tokens, "
               f"{c.licence}. {c.notes}".strip()]
    if c.gguf_sources:
        details.append("GGUF files: " + ", ".join(c.gguf_sources) + " (on huggingface.co)")
    if c.source_note:
        details.append(c.source_note)
    details.append(f"On this machine: {v.describe()}")
    return {
        "key": c.key, "label": c.label, "family": c.family, "dims": str(c.dims),
        "parameters": c.parameters_text, "file": f"{quant.name}, {quant.size_text}",
        "nfcorpus": f"{c.nfcorpus_ndcg10:.3f}" if c.nfcorpus_ndcg10 else "—",
        "fit": fit_text(v), "licence": c.licence, "where": where, "verdict": v,
        "usable": True, "details": "\n".join(details),
    }


@dataclass
class ScanResult:
    """What a pool thread hands the dialog: the survey as table rows, or what went wrong."""

    gpu: GpuInfo | None = None
    models: list[dict[str, Any]] = field(default_factory=list)
    recommended: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def of(cls, found: Survey) -> ScanResult:
        return cls(gpu=found.gpu, models=[_model_row(d) for d in found.models],
                   recommended=[_catalogue_row(s) for s in found.missing],
                   chats=[_chat_row(c) for c in found.chats])


# -- Qt models ----------------------------------------------------------------------------------


class RowsTableModel(QAbstractTableModel):
    """Rows of dicts, one column per key; greyed when a row is not usable, bold when current."""

    def __init__(self, columns: list[tuple[str, str]], numeric: tuple[str, ...] = (),
                 parent: QObject | None = None, header_tips: dict[str, str] | None = None):
        super().__init__(parent)
        self._columns = columns
        self._header_tips = header_tips or {}
        self._numeric = set(numeric)
        self._rows: list[dict[str, Any]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_data(self, row: int) -> dict[str, Any]:
        return self._rows[row]

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._columns[section][1]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._header_tips.get(self._columns[section][0])
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        key = self._columns[index.column()][0]
        if role == Qt.ItemDataRole.DisplayRole:
            text = _dash(row.get(key))
            if key == "name" and row.get("current"):
                text += self.tr(" (in use)")
            return text
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.get("details")
        if role == Qt.ItemDataRole.ForegroundRole and not row.get("usable", True):
            return QPalette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        if role == Qt.ItemDataRole.FontRole and row.get("current"):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and key in self._numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return row.get("path")
        return None


class _Bridge(QObject):
    """Carries a pool thread's result to the GUI thread (a queued signal)."""

    scanned = Signal(int, object)
    checked = Signal(str, object)  # path, model_check.CheckResult (or an error's text)


# -- the dialog -------------------------------------------------------------------------------


class ModelPickerDialog(QDialog):
    """The models on this machine and how they would run; emits model_chosen(path, family)."""

    model_chosen = Signal(str, str)
    chat_model_chosen = Signal(str)  # the chat GGUF Ask writes answers with
    models_loaded = Signal()

    def __init__(self, config: Config, current_model: str | None,
                 parent: QWidget | None = None, *, locations: Locations | None = None,
                 home: str | Path | None = None):
        super().__init__(parent)
        self.config = config
        self.current_model = current_model
        self._locations = locations
        self._home = home
        self._generation = 0
        self._loading = False
        self._gpu: GpuInfo | None = None
        self._bridge = _Bridge()  # parentless: a late result must find it alive
        self._bridge.scanned.connect(self._on_scanned)
        self._bridge.checked.connect(self._on_checked)
        self._checking: str | None = None  # the file being tried before it is used
        self._cancel_check = threading.Event()  # set when the dialog closes
        self.setWindowTitle(self.tr("Choose a model"))
        self.resize(1240, 720)
        self._build()
        self.rescan()

    def _build(self) -> None:
        self.accelerator = QLabel(self.tr("Accelerator: checking…"))
        self.accelerator.setWordWrap(True)
        self.accelerator.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._save_problem = ""  # a model folder that could not be saved in the settings
        self.status = QLabel()
        self.status.setWordWrap(True)  # a long note must not widen the dialog
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(160)
        self.busy.setTextVisible(False)
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.busy)

        self.models = RowsTableModel([
            ("name", self.tr("Name")), ("family_text", self.tr("Family")),
            ("parameters", self.tr("Parameters")), ("quantisation", self.tr("Quantisation")),
            ("dims", self.tr("Dims")), ("context", self.tr("Context")),
            ("size", self.tr("File size")), ("licence", self.tr("Licence")),
            ("source", self.tr("Source")), ("fit", self.tr("On this machine")),
        ], numeric=("parameters", "dims", "context", "size"), parent=self)
        self.table = self._table(self.models)
        self.table.doubleClicked.connect(self._on_double_clicked)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.details = self._details_label()

        self.catalogue = RowsTableModel([
            ("label", self.tr("Model")), ("parameters", self.tr("Parameters")),
            ("dims", self.tr("Dims")), ("file", self.tr("Suggested file")),
            ("nfcorpus", self.tr("NFCorpus")), ("fit", self.tr("On this machine")),
            ("where", self.tr("GGUF files on Hugging Face")), ("licence", self.tr("Licence")),
        ], numeric=("parameters", "dims", "nfcorpus"), parent=self, header_tips={
            "nfcorpus": self.tr("Published nDCG@10 on the NFCorpus benchmark: higher finds "
                                "more (the starter scores 0.316)."),
            "file": self.tr("The quantisation worth downloading, and its file size."),
        })
        self.catalogue_table = self._table(self.catalogue)
        self.catalogue_table.selectionModel().selectionChanged.connect(self._on_catalogue_sel)
        self.catalogue_details = self._details_label()

        self.chats = RowsTableModel([
            ("name", self.tr("Chat model")), ("template", self.tr("Template")),
            ("parameters", self.tr("Parameters")), ("quantisation", self.tr("Quantisation")),
            ("context", self.tr("Context")), ("size", self.tr("File size")),
            ("fit", self.tr("On this machine")), ("together", self.tr("With the embedder")),
        ], numeric=("parameters", "context", "size"), parent=self, header_tips={
            "context": self.tr("The tokens it reads at once: its own, at most 8,192, unless "
                               "set in Settings. Its KV cache grows with it."),
            "together": self.tr("Whether it and the embedder in use fit this machine at once."),
        })
        self.chat_table = self._table(self.chats)
        self.chat_table.selectionModel().selectionChanged.connect(self._on_chat_selection)
        self.chat_table.doubleClicked.connect(lambda _i: self._on_use_chat())
        self.chat_details = self._details_label()
        self.use_chat_button = QPushButton(self.tr("Use for Ask"))
        self.use_chat_button.setEnabled(False)
        self.use_chat_button.clicked.connect(self._on_use_chat)

        local = QWidget()
        lay = QVBoxLayout(local)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._heading(self.tr("On this machine")))
        lay.addWidget(self.table, 1)
        lay.addWidget(self.details)
        rec = QWidget()
        lay = QVBoxLayout(rec)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._heading(self.tr("Recommended, not on this machine")))
        hint = QLabel(self.tr("Semdex downloads nothing. To use one of these, download a GGUF "
                              "file of it yourself (check its licence), then choose Add folder."))
        hint.setWordWrap(True)
        lay.addWidget(hint)
        lay.addWidget(self.catalogue_table, 1)
        lay.addWidget(self.catalogue_details)
        chat = QWidget()
        lay = QVBoxLayout(chat)
        lay.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(self._heading(self.tr("Chat models, for Ask")), 1)
        head.addWidget(self.use_chat_button)
        lay.addLayout(head)
        lay.addWidget(self.chat_table, 1)
        lay.addWidget(self.chat_details)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(local)
        splitter.addWidget(chat)
        splitter.addWidget(rec)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setStretchFactor(2, 2)
        splitter.setChildrenCollapsible(False)

        self.add_button = QPushButton(self.tr("Add folder…"))
        self.add_button.clicked.connect(self._on_add_folder)
        self.rescan_button = QPushButton(self.tr("Look again"))
        self.rescan_button.clicked.connect(self.rescan)
        self.use_button = QPushButton(self.tr("Use this model"))
        self.use_button.setEnabled(False)
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(self._on_use)
        close = QPushButton(self.tr("Close"))
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.rescan_button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        buttons.addWidget(close)

        root = QVBoxLayout(self)
        root.addWidget(self.accelerator)
        root.addLayout(top)
        root.addWidget(splitter, 1)
        root.addLayout(buttons)

    def _on_chat_selection(self) -> None:
        row = self._chat_selected()
        self.use_chat_button.setEnabled(bool(row and row["usable"] and not row["current"]))
        if row is not None:
            self.chat_details.setText(row.get("details", ""))

    def _chat_selected(self) -> dict[str, Any] | None:
        rows = self.chat_table.selectionModel().selectedRows()
        return self.chats.row_data(rows[0].row()) if rows else None

    def _on_use_chat(self) -> None:
        row = self._chat_selected()
        if row is None or not row["usable"]:
            return
        self.config.chat_model = row["path"]
        try:
            self.config.save()
        except (OSError, ValueError) as exc:  # (ConfigError is a ValueError)
            self.chat_details.setText(self.tr("The choice could not be saved: {0}").format(exc))
            return
        self.chat_model_chosen.emit(row["path"])
        rows = [dict(r, current=r["path"] == row["path"]) for r in self.chats.rows()]
        self.chats.set_rows(rows)
        self.use_chat_button.setEnabled(False)
        self.chat_details.setText(self.tr("Ask now writes with {0}.").format(row["name"]))

    def _table(self, model: RowsTableModel) -> QTableView:
        table = QTableView()
        table.setModel(model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setWordWrap(False)
        table.setAlternatingRowColors(True)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setHighlightSections(False)
        return table

    def _details_label(self) -> QLabel:
        label = QLabel()
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def _heading(self, text: str) -> QLabel:
        label = QLabel(text)
        font = label.font()
        font.setBold(True)
        label.setFont(font)
        return label

    # -- loading ------------------------------------------------------------------------------

    def rescan(self) -> None:
        """Look for models again, off the GUI thread; models_loaded follows."""
        self._generation += 1
        generation = self._generation
        self._loading = True
        self.busy.show()
        self.status.setText(self.tr("Looking for GGUF files in the usual places…"))
        self.rescan_button.setEnabled(False)
        kwargs: dict[str, Any] = dict(
            folders=list(self.config.model_folders), chosen=self.current_model,
            locations=self._locations, home=self._home,
            chunk_tokens=self.config.chunk_tokens, threads=self.config.threads,
            device=self.config.embedder_settings().device,
            chat_model=self.config.chat_model, chat_context=self.config.chat_context)
        bridge = self._bridge

        def work() -> None:
            try:
                result = ScanResult.of(survey(**kwargs))
            except Exception as exc:  # noqa: BLE001 - shown to the person, logged in full
                log.exception("looking for models failed")
                result = ScanResult(error=str(exc) or type(exc).__name__)
            try:
                bridge.scanned.emit(generation, result)
            except RuntimeError:  # the dialog and its bridge are gone
                pass

        QThreadPool.globalInstance().start(work)

    def _on_scanned(self, generation: int, result: ScanResult) -> None:
        if generation != self._generation:
            return  # a newer scan is under way
        self._loading = False
        self.busy.hide()
        self.rescan_button.setEnabled(True)
        self._gpu = result.gpu
        if result.gpu is not None:
            line = self.tr("Accelerator: {0}").format(result.gpu.describe())
            if len(result.gpu.gpus) > 1:
                line += " " + self.tr("({0} GPUs: Settings, Compute device, picks "
                                      "another.)").format(len(result.gpu.gpus))
            if self.config.gpu_layers is not None:
                line += " " + self.tr("(GPU layers are set to {0} in Settings; the fit shown "
                                      "is the automatic one.)").format(self.config.gpu_layers)
            self.accelerator.setText(line)
        selected = self.selected_path()
        self.models.set_rows(result.models)
        self.catalogue.set_rows(result.recommended)
        self.chats.set_rows(result.chats)
        self.chat_details.setText(self.tr(
            "No chat model found: Ask needs one (a chat GGUF such as Mistral 7B Instruct, "
            "Q4_K_M). Semdex downloads nothing: put one in a model folder, then Look again.")
            if not result.chats else "")
        usable = sum(1 for r in result.models if r["usable"])
        if result.error:
            self.status.setText(self.tr("Could not look for models: {0}").format(result.error))
        elif not result.models:
            self.status.setText(self.tr("No GGUF files found. Choose Add folder to show Semdex "
                                        "where your models are."))
        else:
            self.status.setText(self.tr("{0} GGUF files found, {1} usable for search.")
                                .format(len(result.models), usable))
        if self._save_problem:  # said until the next scan, not only to the log
            self.status.setText(self._save_problem + " " + self.status.text())
            self._save_problem = ""
        self._fit_columns()
        self._select(selected or next((r["path"] for r in result.models if r["current"]), None))
        self._on_selection()
        self.models_loaded.emit()

    def _fit_columns(self) -> None:
        for table, widest in ((self.table, 340), (self.catalogue_table, 420)):
            header = table.horizontalHeader()
            last = table.model().columnCount() - 1
            for col in range(last):
                table.resizeColumnToContents(col)
                header.resizeSection(col, min(header.sectionSize(col) + 8, widest))

    def _select(self, path: str | None) -> None:
        for i, row in enumerate(self.models.rows()):
            if path is not None and row["path"] == path:
                self.table.selectionModel().select(
                    self.models.index(i, 0),
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows)
                self.table.scrollTo(self.models.index(i, 0))
                return

    # -- the person's actions -----------------------------------------------------------------

    def _selected_row(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models.row_data(rows[0].row()) if rows else None

    def selected_path(self) -> str | None:
        row = self._selected_row()
        return row["path"] if row else None

    def select_path(self, path: str) -> None:
        self._select(str(Path(path).expanduser().resolve()))

    def _on_selection(self, *_: object) -> None:
        row = self._selected_row()
        retry = bool(row and not row["usable"] and row.get("retry"))
        self.use_button.setText(self.tr("Try Again") if retry else self.tr("Use this model"))
        self.use_button.setEnabled(bool(row and (row["usable"] or retry))
                                   and not self._checking)
        self.details.setText(row["details"] if row else "")

    def _on_catalogue_sel(self, *_: object) -> None:
        rows = self.catalogue_table.selectionModel().selectedRows()
        self.catalogue_details.setText(
            self.catalogue.row_data(rows[0].row())["details"] if rows else "")

    def done(self, result: int) -> None:
        self._cancel_check.set()  # a trial load under way is stopped with the dialog
        super().done(result)

    def _on_double_clicked(self, index: QModelIndex) -> None:
        if self.models.row_data(index.row())["usable"]:
            self._on_use()

    def _on_use(self) -> None:
        row = self._selected_row()
        if not row or not (row["usable"] or row.get("retry")) or self._checking:
            return
        # answered from the remembered outcome when it was tried before; Try Again tries anew
        self._check(row, force=not row["usable"])

    def _choose(self, row: dict[str, Any]) -> None:
        self.model_chosen.emit(row["path"], row["family"] or "")
        self.accept()

    def _check(self, row: dict[str, Any], force: bool = False) -> None:
        """Try the file in a child process first (the safe first load): one that crashes
        llama.cpp is marked here, and never reaches the window's own process."""
        from desktop.models.model_check import check_file

        path, family = row["path"], row["family"]
        settings = self.config.embedder_settings()  # what the worker will load it with
        self._checking = path
        self.use_button.setEnabled(False)
        self.busy.show()
        self.status.setText(self.tr("Trying {0} in a separate process before using it…")
                            .format(row["name"]))
        bridge = self._bridge
        cancel = self._cancel_check

        def work() -> None:
            try:
                result: CheckResult | str = check_file(path, family, settings, force=force,
                                                       cancel=cancel)
            except Exception as exc:  # noqa: BLE001 - shown to the person, logged in full
                log.exception("the model check of %s failed to run", path)
                result = str(exc) or type(exc).__name__
            try:
                bridge.checked.emit(path, result)
            except RuntimeError:  # the dialog and its bridge are gone
                pass

        QThreadPool.globalInstance().start(work)

    def _on_checked(self, path: str, result: CheckResult | str) -> None:
        if path != self._checking:
            return
        self._checking = None
        self.busy.hide()
        rows = self.models.rows()
        row = next((r for r in rows if r["path"] == path), None)
        if row is None:
            return
        if isinstance(result, str):
            self.status.setText(self.tr("Could not try {0}: {1}").format(row["name"], result))
        elif result.ok:
            row.update(usable=True, retry=False, problem=None)
            self.status.setText(self.tr("{0} works: switching to it.").format(row["name"]))
            self._choose(row)
            return
        elif result.transient:  # killed, or too slow: it may work another time
            self.status.setText(self.tr("{0} could not be tried: {1}").format(
                row["name"], result.reason))
        else:
            row.update(usable=False, retry=True, problem=result.reason,
                       fit=self.tr("Not usable: {0}").format(result.reason))
            row["details"] = "\n".join([row["path"], row["fit"]])
            self.models.set_rows(rows)
            self._select(path)
            self.status.setText(self.tr("{0} cannot be used: {1}").format(
                row["name"], result.reason))
        self._on_selection()

    def _on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("A folder with GGUF models"))
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        """Remember a folder in the config (saved at once) and look again."""
        path = str(Path(folder).expanduser().resolve())
        if path not in self.config.model_folders:
            self.config.model_folders.append(path)
            try:
                self.config.save()
            except (OSError, ConfigError) as exc:
                log.warning("cannot save the model folder %s: %s", path, exc)
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self._save_problem = self.tr(
                    "The folder is searched now, but could not be saved in the settings ({0}): "
                    "it will be forgotten when Semdex closes.").format(why)
        self.rescan()

    # -- for the main window and tests --------------------------------------------------------

    def is_loading(self) -> bool:
        return self._loading

    def is_checking(self) -> bool:
        return self._checking is not None

    def gpu(self) -> GpuInfo | None:
        return self._gpu

    def rows(self) -> list[dict[str, Any]]:
        """The local models as shown: one dict per row (display texts plus path, usable,
        current, family, problem and the Verdict)."""
        return self.models.rows()

    def catalogue_rows(self) -> list[dict[str, Any]]:
        return self.catalogue.rows()
