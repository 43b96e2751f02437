"""Where Semdex keeps things on this machine: one place for the app's name, the environment
overrides and the platform's folders (platformdirs).

| what | override | default (platformdirs) |
|---|---|---|
| the data dir (index, state.json) | ``$SEMDEX_DATA_DIR`` | user data dir (or s3://, gs://, az://) |
| the settings file's folder | ``$SEMDEX_CONFIG_DIR`` | user config dir |
| the log folder | ``$SEMDEX_LOG_DIR`` | user log dir |
| converted models (the starter) | ``$SEMDEX_MODEL_CACHE`` | user cache dir / models |

Semdex's own read-only files (the icon, a frozen build's bundled models) are found by
``desktop.frozen``. Nothing here creates a folder except ``resolve_data_dir``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import platformdirs

APP = "semdex"


def _dir(env: str, platform_dir: Callable[..., str], *sub: str, **kw: object) -> Path:
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    return Path(platform_dir(APP, **({"appauthor": False} | kw)), *sub)


def default_data_dir() -> Path:
    """``$SEMDEX_DATA_DIR``, or the platform's data folder for Semdex."""
    return _dir("SEMDEX_DATA_DIR", platformdirs.user_data_dir)


REMOTE_SCHEMES = ("s3", "gs", "az")  # object storage, through LanceDB (desktop/index/remote_dir)


def is_remote(value: str | os.PathLike[str] | None) -> bool:
    """Whether a data dir setting names object storage: s3://bucket/prefix, gs://, az://."""
    return isinstance(value, str) and re.match(
        rf"^({'|'.join(REMOTE_SCHEMES)})://[^/\s]", value.strip(), re.IGNORECASE) is not None


def resolve_data_dir(value: str | os.PathLike[str] | None) -> Path | str:
    """The data dir a setting or flag names (the default when empty): a local folder, created
    and absolute, or the URI of one on object storage (scheme lower-cased, no trailing /)."""
    raw = os.fspath(value) if value else os.environ.get("SEMDEX_DATA_DIR")
    if isinstance(raw, str) and is_remote(raw):
        scheme, rest = raw.strip().rstrip("/").split("://", 1)
        return f"{scheme.lower()}://{rest}"
    path = Path(value).expanduser() if value else default_data_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def config_dir() -> Path:
    """``$SEMDEX_CONFIG_DIR``, or the platform's config folder for Semdex."""
    return _dir("SEMDEX_CONFIG_DIR", platformdirs.user_config_dir)


def log_dir() -> Path:
    """``$SEMDEX_LOG_DIR``, or the platform's log folder for Semdex."""
    return _dir("SEMDEX_LOG_DIR", platformdirs.user_log_dir)


def model_cache_dir() -> Path:
    """``$SEMDEX_MODEL_CACHE``, or the per-user cache folder's ``models``."""
    # (appauthor left as it always was here: on Windows ...\\semdex\\semdex\\Cache, where
    # the models converted by earlier versions are)
    return _dir("SEMDEX_MODEL_CACHE", platformdirs.user_cache_dir, "models", appauthor=None)
