"""Where Semdex keeps its data, and the small JSON state beside the database.

The data dir holds the LanceDB database and `state.json`: the folders the person added, the
active model, and what the last run of each folder found wrong. Writes are atomic (temp file
and rename) so a kill never leaves half a state file.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from desktop.atomic import write_atomic


@dataclass
class ModelChoice:
    path: str | None = None  # None: the starter model
    family: str | None = None  # None: recognised from the file


@dataclass
class FolderState:
    path: str
    added_at: float = field(default_factory=time.time)
    last_sync: float | None = None
    problems: dict[str, str] = field(default_factory=dict)  # path -> reason, last run only
    excludes: list[str] = field(default_factory=list)  # --exclude globs of its last full run


def _known(kind: type, values: dict[str, Any]) -> Any:
    """A dataclass from JSON, ignoring keys a newer version may have added."""
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in values.items() if k in names})


@dataclass
class State:
    model: ModelChoice = field(default_factory=ModelChoice)
    folders: dict[str, FolderState] = field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: Path) -> State:
        path = data_dir / "state.json"
        try:
            raw: dict[str, Any] = json.loads(path.read_text("utf-8"))
            return cls(
                model=_known(ModelChoice, raw.get("model") or {}),
                folders={k: _known(FolderState, v)
                         for k, v in (raw.get("folders") or {}).items()},
            )
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, AttributeError):
            # A damaged state file must not lock the person out: keep a copy, start afresh.
            try:
                path.replace(path.with_suffix(".json.damaged"))
            except OSError:
                pass
            return cls()

    def save(self, data_dir: Path) -> None:
        payload = json.dumps({"model": asdict(self.model),
                              "folders": {k: asdict(v) for k, v in self.folders.items()}},
                             indent=2, ensure_ascii=False)
        write_atomic(data_dir / "state.json", payload)

    def add_folder(self, path: str) -> FolderState:
        if path not in self.folders:
            self.folders[path] = FolderState(path)
        return self.folders[path]
