"""The safe first load: a model file is tried in a child process before Semdex loads it.

llama.cpp ends the whole process on some inputs instead of returning an error. Validation
(gguf_info) catches what can be known from the file; this is the net under the rest. The first
time a file is used with given settings, a child process with the same llama.cpp build loads
it with the same parameters and embeds test passages (desktop/models/trial_load.py). If the child
crashes, the person gets a message naming the file and what happened, instead of a window
that vanishes, and the main process does not load that file.

What is remembered, per file (path, size, modification time), llama.cpp build and load
settings, in the model cache folder: a pass, so later starts cost a lookup, and a crash (by
signal, or vectors that are not numbers), which is not a matter of luck. A child killed from
outside, one that takes too long, one that was cancelled, and a clean refusal by llama.cpp
(out of memory, say) are reported but not remembered: they may go otherwise next time.
`semdex models --recheck PATH` and the picker's "Try Again" forget a remembered crash.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from desktop.atomic import write_atomic
from desktop.models.devices import CPU
from desktop.models.embedder import EmbedderSettings, load_params
from desktop.models.gguf_info import ModelFileError, ModelInfo
from desktop.models.profiles import Profile
from desktop.models.trial_load import TIMEOUT, CheckResult, run_child

log = logging.getLogger(__name__)

__all__ = ["CheckResult", "ModelUnusable", "build_id", "check", "check_file", "ensure_usable",
           "failures", "latest", "record_key", "records_path", "remembered"]

RECORDS_FILE = "model-checks.json"
CHECK_VERSION = 2  # a change in what the child does makes every record stale (2: flash attention)
MAX_RECORDS = 500
_lock = threading.Lock()
_build: str | None = None


class ModelUnusable(ModelFileError):
    """The file failed its trial load; it is not loaded in this process."""

    def __init__(self, path: str | os.PathLike[str], result: CheckResult):
        self.result = result
        if result.transient:
            reason = (f"{result.reason} (in a trial load in a separate process; Semdex will "
                      "try it again next time)")
        else:
            reason = (f"{result.reason} (found in a trial load in a separate process; Semdex "
                      "does not load this file)")
        super().__init__(path, reason)


# -- identity of what was checked --------------------------------------------------------------


def build_id() -> str:
    """The llama.cpp build: llama-cpp-python's version, the CPU features it uses, and its
    libraries by size and by the bytes at their start and end (not their dates: a onefile app
    unpacks them afresh at every start). A rebuilt or updated llama.cpp is tried afresh."""
    global _build
    with _lock:
        if _build is None:
            from desktop.models.llama_model import system_info

            parts = [_version("llama-cpp-python") or "?", system_info()]
            parts += _library_stamps()
            _build = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
        return _build


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _library_stamps() -> list[str]:
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    out = []
    try:
        entries = sorted(os.scandir(lib), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        try:
            if entry.is_symlink() or not entry.is_file():
                continue
            size = entry.stat().st_size
            h = hashlib.blake2b(digest_size=8)
            with open(entry.path, "rb") as f:
                h.update(f.read(1 << 16))
                f.seek(max(0, size - (1 << 16)))
                h.update(f.read(1 << 16))
            out.append(f"{entry.name}:{size}:{h.hexdigest()}")
        except OSError:
            continue
    return out


def _settings_for(profile: Profile, settings: EmbedderSettings) -> EmbedderSettings:
    return replace(settings, family=profile.family)


def _child_settings(info: ModelInfo, profile: Profile,
                    settings: EmbedderSettings) -> EmbedderSettings:
    """The settings the child loads with: automatic GPU layers are decided here, once, so the
    child tries the very layer count the record is kept under (not a reading of its own)."""
    ours = _settings_for(profile, settings)
    if ours.gpu_layers is None or ours.device is None:
        p = load_params(info, profile, ours)
        # the device too, so that the child does not choose again ("cpu": the processor)
        device = p.device or (CPU if p.gpu_layers == 0 else None)
        ours = replace(ours, gpu_layers=p.gpu_layers, device=device)
    return ours


def file_prefix(path: str | os.PathLike[str]) -> str:
    """The part of a record's key that names the file as it is now, and the build."""
    real = Path(path).resolve()
    try:
        st = real.stat()
    except OSError as exc:
        raise ModelFileError(real, f"cannot be read ({exc.strerror or exc})") from None
    return "|".join(str(x) for x in (CHECK_VERSION, real, st.st_size, st.st_mtime_ns,
                                      build_id())) + "|"


def record_key(info: ModelInfo, profile: Profile, settings: EmbedderSettings) -> str:
    """What a result is remembered under: the file as it is now, the build, and every load
    parameter that decides which kernels run (not the thread count)."""
    p = load_params(info, profile, _settings_for(profile, settings))
    chunk = settings.chunk_tokens or profile.default_chunk
    return file_prefix(info.path) + "|".join(str(x) for x in (
        profile.family, chunk, p.n_ctx, p.n_batch, p.n_ubatch, p.gpu_layers, p.pooling,
        int(p.extra_bufts), p.device or ""))


# -- records -----------------------------------------------------------------------------------


def records_path() -> Path:
    from desktop.models.starter import default_model_cache

    return default_model_cache() / RECORDS_FILE


def _load_records(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    records = data.get("records") if isinstance(data, dict) else None
    return records if isinstance(records, dict) else {}


def _update_records(path: Path, change) -> None:
    with _lock:
        records = _load_records(path)
        change(records)
        while len(records) > MAX_RECORDS:  # oldest first: dicts keep insertion order
            records.pop(next(iter(records)))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"version": 1, "records": records}, indent=1))
        except OSError as exc:  # the check still holds for this run
            log.warning("could not write the model checks in %s: %s", path, exc)


def _save_record(path: Path, key: str, result: CheckResult) -> None:
    def change(records: dict[str, dict[str, Any]]) -> None:
        records.pop(key, None)
        records[key] = result.to_dict()

    _update_records(path, change)


def _result(rec: Any) -> CheckResult | None:
    if not isinstance(rec, dict):
        return None
    try:
        result = CheckResult.from_dict(rec)
    except TypeError:
        return None
    result.remembered = True
    return result


def remembered(info: ModelInfo, profile: Profile, settings: EmbedderSettings, *,
               records: Path | None = None) -> CheckResult | None:
    """The remembered outcome for this file and these settings, or None (never tried)."""
    try:
        key = record_key(info, profile, settings)
    except ModelFileError:
        return None
    return _result(_load_records(records or records_path()).get(key))


def latest(paths: Sequence[str | os.PathLike[str]], *, records: Path | None = None
           ) -> dict[Path, CheckResult]:
    """The newest remembered outcome of each file as it is now, with this build, whatever the
    settings were. Reads the records once and loads no model."""
    recs = _load_records(records or records_path())
    if not recs or not paths:
        return {}
    prefixes: dict[str, Path] = {}
    for path in paths:
        try:
            prefixes[file_prefix(path)] = Path(path)
        except ModelFileError:
            continue
    out: dict[Path, CheckResult] = {}
    for key, rec in recs.items():  # oldest first: a later outcome replaces an earlier one
        for pre, path in prefixes.items():
            if key.startswith(pre):
                result = _result(rec)
                if result is not None:
                    out[path] = result
                break
    return out


def failures(paths: Sequence[str | os.PathLike[str]], *, records: Path | None = None
             ) -> dict[Path, CheckResult]:
    """The files whose newest outcome is a crash: what the model picker and `semdex models`
    mark unusable. A later pass (other settings, or after Try Again) clears it."""
    return {p: r for p, r in latest(paths, records=records).items() if not r.ok}


# -- the check ---------------------------------------------------------------------------------


def check(info: ModelInfo, profile: Profile, settings: EmbedderSettings, *,
          records: Path | None = None, timeout: float = TIMEOUT, force: bool = False,
          cancel: threading.Event | None = None) -> CheckResult:
    """The outcome for this file: remembered, or found now by trying it in a child process."""
    return remembered_or_tried(
        record_key(info, profile, settings), info.path,
        lambda: run_child(info.path, _child_settings(info, profile, settings), timeout=timeout,
                          cancel=cancel),
        records=records, force=force)


def remembered_or_tried(key: str, path: Path, trial: Callable[[], CheckResult], *,
                        records: Path | None = None, force: bool = False) -> CheckResult:
    """The outcome remembered under ``key``, or ``trial()``'s, remembered unless transient
    (a cancel, a child that could not start)."""
    records = records or records_path()
    if not force:
        rec = _result(_load_records(records).get(key))
        if rec is not None:
            return rec
    result = trial()
    if result.transient:
        log.warning("the trial load of %s did not settle it: %s", path, result.reason)
    else:
        _save_record(records, key, result)
    if result.ok:
        log.info("trial load of %s passed in %.2f s", Path(path).name, result.seconds)
    else:
        log.info("trial load of %s failed: %s", path, result.reason)
    return result


def ensure_usable(info: ModelInfo, profile: Profile, settings: EmbedderSettings, *,
                  records: Path | None = None, cancel: threading.Event | None = None
                  ) -> CheckResult:
    """Raise ModelUnusable (a ModelFileError naming the file) unless the file passed."""
    result = check(info, profile, settings, records=records, cancel=cancel)
    if not result.ok:
        raise ModelUnusable(info.path, result)
    return result


def check_file(path: str | os.PathLike[str], family: str | None,
               settings: EmbedderSettings, *, records: Path | None = None,
               force: bool = False, cancel: threading.Event | None = None) -> CheckResult:
    """check() for a file by its path (the model picker, `semdex models --recheck`)."""
    from desktop.models.gguf_info import read_model_info
    from desktop.models.profiles import detect_profile

    info = read_model_info(path)
    return check(info, detect_profile(info, family), settings, records=records, force=force,
                 cancel=cancel)
