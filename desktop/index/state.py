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
from typing import Any, Protocol

from desktop.atomic import write_atomic

STATE_NAME = "state.json"


class Docs(Protocol):
    """Where a remote data dir keeps its small documents (remote_dir.RemoteDocs)."""

    def read(self, name: str) -> str | None: ...

    def write(self, name: str, text: str) -> None: ...


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
    def from_json(cls, text: str) -> State:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            model=_known(ModelChoice, raw.get("model") or {}),
            folders={k: _known(FolderState, v) for k, v in (raw.get("folders") or {}).items()},
        )

    def to_json(self) -> str:
        return json.dumps({"model": asdict(self.model),
                           "folders": {k: asdict(v) for k, v in self.folders.items()}},
                          indent=2, ensure_ascii=False)

    @classmethod
    def load(cls, data_dir: Path | Docs) -> State:
        """The state of a local data dir (a folder), or of a remote one (its Docs)."""
        if not isinstance(data_dir, Path):
            text = data_dir.read(STATE_NAME)
            try:
                return cls() if text is None else cls.from_json(text)
            except (ValueError, TypeError, AttributeError):
                return cls()
        path = data_dir / STATE_NAME
        try:
            return cls.from_json(path.read_text("utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, AttributeError):
            # A damaged state file must not lock the person out: keep a copy, start afresh.
            try:
                path.replace(path.with_suffix(".json.damaged"))
            except OSError:
                pass
            return cls()

    def save(self, data_dir: Path | Docs) -> None:
        if isinstance(data_dir, Path):
            write_atomic(data_dir / STATE_NAME, self.to_json())
        else:
            data_dir.write(STATE_NAME, self.to_json())

    def add_folder(self, path: str) -> FolderState:
        if path not in self.folders:
            self.folders[path] = FolderState(path)
        return self.folders[path]
