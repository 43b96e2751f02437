"""The person's settings: a small typed JSON file in the platform's config folder.

What belongs to an index (its folders, its model) stays in the data dir's state.json; this file
holds how Semdex should work on this machine: where the data dir is, which names to skip, how
many GPU layers and threads to use, where else to look for models, search defaults. The window
and every `semdex` command read the same file (a command's flags override it; what was wrong
with the file reaches the person in both); QSettings keeps only window geometry.

Loading never fails: a missing file gives the defaults, a damaged one is kept beside as
``config.json.damaged`` and the defaults are used, a value of the wrong type falls back to its
default (with a note), and keys a newer Semdex wrote are kept and written back untouched, so an
older version does not erase a newer one's settings. Saving is atomic (temp file and rename).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.atomic import write_atomic
from desktop.models.profiles import TASKS
from desktop.paths import config_dir, resolve_data_dir
from desktop.search.query import MODES

if TYPE_CHECKING:
    from desktop.index.sync import SyncSettings
    from desktop.models.embedder import EmbedderSettings

log = logging.getLogger(__name__)

FILE_NAME = "config.json"
VERSION = 1

CHUNK_TOKENS_RANGE = (16, 8192)
MAX_THREADS = 1024
MAX_PER_FILE = 100


def config_path() -> Path:
    return config_dir() / FILE_NAME


class ConfigError(ValueError):
    """Values that cannot be saved; ``problems`` maps each field to a sentence."""

    def __init__(self, problems: dict[str, str]):
        self.problems = dict(problems)
        super().__init__("; ".join(self.problems.values()))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_list_problem(value: Any, what: str) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"{what} must be a list of text lines"
    return None


def _device(value: str | None) -> str | None:
    """A device setting as the embedder takes it: None for automatic ("auto" on the command
    line), "cpu" whatever its case, else the llama.cpp device name as written."""
    if value is None or not value.strip() or value.strip().lower() in ("auto", "automatic"):
        return None
    return "cpu" if value.strip().lower() == "cpu" else value.strip()


@dataclass
class Config:
    data_dir: str | None = None  # None: the platform's data folder (or $SEMDEX_DATA_DIR)
    excludes: list[str] = field(default_factory=list)  # file and folder name patterns to skip
    gpu_layers: int | None = None  # None: the layers that fit the GPU at load; -1 all; 0 CPU only
    device: str | None = None  # a llama.cpp device ("Vulkan0"), "cpu"; None: the best GPU
    chunk_tokens: int | None = None  # None: the model family's passage length
    threads: int | None = None  # None: every core this process may use
    model_folders: list[str] = field(default_factory=list)  # extra places to look for GGUFs
    polling: bool = False  # poll folders instead of change notifications (network drives)
    search_mode: str = "hybrid"
    task: str = "general"
    custom_instruction: str = ""  # instruction-aware models: replaces the task's instruction
    per_file: int = 3  # passages shown per file in the results
    embed_url: str | None = None  # an embedding server (OpenAI /v1/embeddings); None: here
    chat_model: str | None = None  # the GGUF that writes answers (Ask); None: none chosen
    chat_context: int | None = None  # its context in tokens; None: the model's default
    answer_tokens: int = 384  # the cap on an answer's length
    max_text_mb: float = 16.0  # text extracted from one file, at most
    extract_timeout_s: float = 120.0  # one file's extraction (PDF, Office, e-books), at most
    ocr_pdfs: bool = True  # PDF pages with no text layer read by OCR
    ocr_images: bool = False  # photos and scans (.png, .jpg, .tiff, .webp) read by OCR
    # keys a newer version wrote: kept, written back, never compared
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def embedder_settings(self, *, chunk_tokens: int | None = None, threads: int | None = None,
                          gpu_layers: int | None = None, embed_url: str | None = None,
                          device: str | None = None) -> EmbedderSettings:
        """The model settings these stand for, with a command line's flags (those not None)
        over them: one place, so the window's worker, the model picker's trial load and the
        CLI ask for the same thing (and so find the same record)."""
        from desktop.models.embedder import EmbedderSettings

        def pick(flag: int | None, saved: int | None) -> int | None:
            return saved if flag is None else flag

        return EmbedderSettings(chunk_tokens=pick(chunk_tokens, self.chunk_tokens),
                                threads=pick(threads, self.threads),
                                gpu_layers=pick(gpu_layers, self.gpu_layers),
                                embed_url=(embed_url or self.embed_url or None),
                                device=_device(device if device is not None else self.device))

    def chat_settings(self, *, chat_model: str | None = None, context: int | None = None,
                      answer_tokens: int | None = None, threads: int | None = None,
                      gpu_layers: int | None = None, device: str | None = None):
        """The chat model's settings (None when no chat model is chosen), flags over them;
        it runs where the embedder runs (threads, GPU layers, device)."""
        from desktop.ask.chat_model import ChatSettings

        path = chat_model or self.chat_model
        if not path:
            return None
        return ChatSettings(path=os.path.abspath(os.path.expanduser(path)),
                            context=context or self.chat_context,
                            answer_tokens=answer_tokens or self.answer_tokens,
                            threads=threads if threads is not None else self.threads,
                            gpu_layers=gpu_layers if gpu_layers is not None else self.gpu_layers,
                            device=_device(device if device is not None else self.device))

    def extract_settings(self):
        """How files are extracted (limits, OCR): desktop.extract.settings."""
        from desktop.extract.settings import ExtractSettings

        return ExtractSettings(max_text_mb=float(self.max_text_mb),
                               timeout_s=float(self.extract_timeout_s),
                               ocr_pdfs=bool(self.ocr_pdfs), ocr_images=bool(self.ocr_images))

    def sync_settings(self, *, polling: bool | None = None,
                      quiet: float | None = None) -> SyncSettings:
        """How live sync runs (the window's and `semdex watch`'s), flags over settings."""
        from desktop.index.sync import SyncSettings

        settings = SyncSettings(polling=self.polling if polling is None else polling)
        if quiet is not None:
            settings.quiet = quiet
        return settings

    # -- checking -------------------------------------------------------------------------

    def problems(self) -> dict[str, str]:
        """Field name -> what is wrong with its value, for every field that is wrong."""
        out: dict[str, str] = {}
        if self.data_dir is not None and (not isinstance(self.data_dir, str)
                                          or not self.data_dir.strip()):
            out["data_dir"] = "The data folder must be a folder path, or empty for the default."
        problem = _str_list_problem(self.excludes, "Excluded names")
        if problem:
            out["excludes"] = problem
        else:
            bad = [p for p in self.excludes if not p.strip() or "/" in p or "\\" in p]
            if bad:
                out["excludes"] = (f"Excluded names are file or folder names or patterns such "
                                   f"as *.tmp, not paths or empty lines: {bad[0]!r}.")
        if self.gpu_layers is not None and (not _is_int(self.gpu_layers)
                                            or self.gpu_layers < -1):
            out["gpu_layers"] = ("GPU layers must be automatic, -1 (all), 0 (processor only) "
                                 "or a number of layers.")
        if self.device is not None and (not isinstance(self.device, str)
                                        or not self.device.strip()):
            out["device"] = ("The compute device must be automatic, cpu, or a device name such "
                             "as Vulkan0.")
        lo, hi = CHUNK_TOKENS_RANGE
        if self.chunk_tokens is not None and (not _is_int(self.chunk_tokens)
                                              or not lo <= self.chunk_tokens <= hi):
            out["chunk_tokens"] = (f"Passage length must be between {lo} and {hi} tokens, "
                                   "or automatic (the model's own).")
        if self.threads is not None and (not _is_int(self.threads)
                                         or not 1 <= self.threads <= MAX_THREADS):
            out["threads"] = (f"Threads must be at least 1 (and at most {MAX_THREADS}), or "
                              "automatic.")
        problem = _str_list_problem(self.model_folders, "Model folders")
        if problem:
            out["model_folders"] = problem
        elif any(not p.strip() for p in self.model_folders):
            out["model_folders"] = "Model folders must not contain empty lines."
        if not isinstance(self.polling, bool):
            out["polling"] = "Polling must be on or off."
        if self.embed_url is not None:
            from desktop.models.server_url import endpoint

            try:
                endpoint(self.embed_url if isinstance(self.embed_url, str) else "")
            except ValueError as exc:
                out["embed_url"] = str(exc)[0].upper() + str(exc)[1:] + "."
        if self.chat_model is not None and (not isinstance(self.chat_model, str)
                                            or not self.chat_model.strip()):
            out["chat_model"] = "The chat model must be a GGUF file's path, or none."
        if self.chat_context is not None and (not _is_int(self.chat_context)
                                              or not 512 <= self.chat_context <= 131072):
            out["chat_context"] = ("The chat model's context must be between 512 and 131,072 "
                                   "tokens, or automatic.")
        if not _is_int(self.answer_tokens) or not 16 <= self.answer_tokens <= 4096:
            out["answer_tokens"] = "The answer's length must be between 16 and 4,096 tokens."
        if not isinstance(self.max_text_mb, (int, float)) or not 0.1 <= self.max_text_mb <= 1024:
            out["max_text_mb"] = "The largest text per file must be between 0.1 and 1,024 MB."
        if (not isinstance(self.extract_timeout_s, (int, float))
                or not 5 <= self.extract_timeout_s <= 3600):
            out["extract_timeout_s"] = ("The time limit for one file must be between 5 s and "
                                        "an hour.")
        for name in ("ocr_pdfs", "ocr_images"):
            if not isinstance(getattr(self, name), bool):
                out[name] = "OCR must be on or off."
        if self.search_mode not in MODES:
            out["search_mode"] = (f"Search mode must be one of {', '.join(MODES)}, "
                                  f"not {self.search_mode!r}.")
        if self.task not in TASKS:
            out["task"] = f"Task must be one of {', '.join(TASKS)}, not {self.task!r}."
        if not isinstance(self.custom_instruction, str):
            out["custom_instruction"] = "The custom instruction must be text."
        if not _is_int(self.per_file) or not 1 <= self.per_file <= MAX_PER_FILE:
            out["per_file"] = f"Passages per file must be between 1 and {MAX_PER_FILE}."
        return out

    def validate(self) -> None:
        """Raise ConfigError when any value is wrong."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    # -- the file -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**self.extra, "version": VERSION, **data}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> tuple[Config, list[str]]:
        """A config from parsed JSON, and a note for each value that fell back to its default.

        Unknown keys (a newer version's) are kept in ``extra``.
        """
        names = {f.name for f in fields(cls)} - {"extra"}
        config = cls(extra={k: v for k, v in raw.items() if k not in names and k != "version"})
        defaults = cls()
        notes: list[str] = []
        for name in sorted(names & raw.keys()):
            setattr(config, name, raw[name])
            problem = config.problems().get(name)
            if problem:
                setattr(config, name, getattr(defaults, name))
                notes.append(f"{problem} The default is used instead.")
        return config, notes

    @classmethod
    def load_with_notes(cls, path: Path | None = None) -> tuple[Config, list[str]]:
        """The saved config (defaults when there is none), and sentences about what was wrong
        with the file, for the person."""
        path = path or config_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(), []
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return cls(), [f"The settings file {path} cannot be read ({exc.strerror or exc}); "
                           "the defaults are used."]
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            damaged = path.with_name(path.name + ".damaged")
            try:
                path.replace(damaged)
            except OSError:
                damaged = path
            log.warning("damaged settings file %s (%s); kept as %s", path, exc, damaged)
            return cls(), [f"The settings file was damaged; a copy was kept as {damaged} and "
                           "the defaults are used."]
        version = raw.get("version")
        if _is_int(version) and version > VERSION:
            log.info("%s was written by a newer Semdex (version %s); unknown keys are kept",
                     path, version)
        config, notes = cls.from_dict(raw)
        for note in notes:
            log.warning("%s: %s", path, note)
        return config, notes

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        return cls.load_with_notes(path)[0]

    def save(self, path: Path | None = None) -> Path:
        """Write the file atomically; raises ConfigError for wrong values, OSError for a
        folder that cannot be written."""
        self.validate()
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"
        return write_atomic(path, text)

    # -- what the core needs --------------------------------------------------------------

    def resolved_data_dir(self) -> Path:
        """The data dir this config points at (paths.resolve_data_dir creates it)."""
        return resolve_data_dir(self.data_dir)
