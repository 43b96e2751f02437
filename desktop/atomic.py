"""Writing a file so that a reader, a crash or a kill sees the old file or the new one, never
half of either: write a temp file beside it, flush it to disk, rename it over the old one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, encoding: str = "utf-8",
                 fsync: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically (its folder must exist). The temp file is
    removed if anything fails. ``fsync=False`` for notes whose loss costs nothing."""
    raw = data.encode(encoding) if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
