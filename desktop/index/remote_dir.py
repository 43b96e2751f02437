"""A data dir on object storage: ``s3://bucket/prefix`` (and ``gs://``, ``az://``), one shared
index for a team: one writer at a time, any number of readers.

Everything that is a file in a local data dir lives in the bucket, through LanceDB's own
object-store layer (credentials and endpoint from the environment, as the AWS, Google and Azure
tools take them: AWS_ACCESS_KEY_ID, AWS_ENDPOINT, GOOGLE_APPLICATION_CREDENTIALS, ...):

- the tables, under ``<uri>/lancedb``;
- state.json and index-builds.json, as rows of a small table (``semdex_docs``);
- the writer's lease, a one-row table (``semdex_writer``): taking it is a compare-and-set on
  its generation (Lance commits are put-if-not-exists, so two takers cannot both win), the
  holder renews it every HEARTBEAT_SECONDS, and one not renewed for STALE_SECONDS (a writer
  that crashed, or lost its network) may be taken over.

A folder on this machine (companion_dir) holds what is only this machine's: the OS lock that
orders this machine's processes (and the note of which of them holds it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from desktop.index.lock import DataDirBusy
from desktop.paths import APP

log = logging.getLogger(__name__)

DOCS_TABLE = "semdex_docs"
LEASE_TABLE = "semdex_writer"
HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 120.0  # a lease not renewed this long is free to take (a dead writer)

_DOCS_SCHEMA = pa.schema([pa.field("name", pa.string(), nullable=False),
                          pa.field("text", pa.string()), pa.field("saved_at", pa.float64())])
_LEASE_SCHEMA = pa.schema([pa.field("slot", pa.string(), nullable=False),
                           pa.field("generation", pa.int64()), pa.field("holder", pa.string()),
                           pa.field("host", pa.string()), pa.field("pid", pa.int64()),
                           pa.field("mode", pa.string()), pa.field("since", pa.float64()),
                           pa.field("heartbeat", pa.float64())])


def companion_dir(uri: str) -> Path:
    """This machine's folder for a remote data dir (its OS lock, its logs), created."""
    import platformdirs

    slug = re.sub(r"[^A-Za-z0-9]+", "-", uri.split("://", 1)[1])[:60].strip("-")
    tag = hashlib.blake2b(uri.encode(), digest_size=4).hexdigest()
    path = Path(platformdirs.user_cache_dir(APP, appauthor=False), "remote", f"{slug}-{tag}")
    path.mkdir(parents=True, exist_ok=True)
    return path


class RemoteDirError(OSError):
    """The object store cannot be used: no such bucket, no credentials, unreachable."""


def explain(exc: BaseException) -> str:
    """A one-line reason from an object-store error (Lance's are pages of Rust debug text)."""
    text = str(exc)
    message = re.search(r"<Message>(.*?)</Message>", text)
    code = re.search(r"<Code>(.*?)</Code>", text)
    if message:
        return message.group(1) + (f" ({code.group(1)})" if code else "")
    for pattern in (r"status: (\d{3})", r"(credential[^,}\]]*)", r"(error trying to connect[^,}]*)",
                    r"(Connection refused)"):
        found = re.search(pattern, text, re.IGNORECASE)
        if found:
            return (f"HTTP {found.group(1)}" if pattern.startswith("status") else
                    found.group(1)).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def connect(uri: str) -> Any:
    """The LanceDB database of a data dir on object storage, in the process's one session;
    every read looks for the newest version (other machines write). RemoteDirError, with
    the reason in a line, when the store cannot be used."""
    import lancedb

    from desktop.index.store import shared_session

    try:
        db = lancedb.connect(f"{uri}/lancedb", read_consistency_interval=timedelta(0),
                             session=shared_session())
        db.list_tables()  # the bucket exists and answers, with these credentials
    except (ValueError, OSError, RuntimeError) as exc:
        raise RemoteDirError(f"{uri}: {explain(exc)}") from None
    return db


def _open(db: Any, name: str, schema: pa.Schema) -> Any:
    try:
        return db.open_table(name)
    except (ValueError, FileNotFoundError, OSError):
        try:
            return db.create_table(name, schema=schema)
        except (ValueError, OSError):  # another process created it first
            return db.open_table(name)


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class RemoteDocs:
    """Small JSON documents (state.json, index-builds.json) kept as rows beside the index."""

    def __init__(self, db: Any):
        self.db = db
        self._table: Any = None

    def _get(self, create: bool) -> Any:
        if self._table is None:
            if create:
                self._table = _open(self.db, DOCS_TABLE, _DOCS_SCHEMA)
            else:  # a reader never writes: no table yet is no document yet
                try:
                    self._table = self.db.open_table(DOCS_TABLE)
                except (ValueError, FileNotFoundError, OSError):
                    return None
        return self._table

    def read(self, name: str) -> str | None:
        table = self._get(create=False)
        if table is None:
            return None
        rows = table.search().where(f"name = {_sql(name)}").limit(1).to_list()
        return rows[0]["text"] if rows else None

    def write(self, name: str, text: str) -> None:
        data = pa.table({"name": [name], "text": [text], "saved_at": [time.time()]},
                        schema=_DOCS_SCHEMA)
        (self._get(create=True).merge_insert("name").when_matched_update_all()
         .when_not_matched_insert_all().execute(data))


# -- the writer's lease ----------------------------------------------------------------------


def _lease_row(table: Any) -> dict[str, Any] | None:
    rows = table.search().where("slot = 'writer'").limit(1).to_list()
    return rows[0] if rows else None


def lease_holder(db: Any, now: float | None = None) -> dict[str, Any] | None:
    """Who holds the writer's lease now (None when free or stale), as the local lock's note."""
    try:
        table = db.open_table(LEASE_TABLE)
    except (ValueError, FileNotFoundError, OSError):
        return None
    row = _lease_row(table)
    now = time.time() if now is None else now
    if not row or not row["holder"] or now - (row["heartbeat"] or 0) > STALE_SECONDS:
        return None
    return {"pid": row["pid"], "host": row["host"], "mode": row["mode"],
            "since": row["since"], "heartbeat": row["heartbeat"]}


class RemoteBusy(DataDirBusy):
    """Another process, perhaps on another machine, holds the writer's lease."""

    def __init__(self, uri: str, holder: dict[str, Any]):
        self.holder = holder
        since = time.strftime("%H:%M:%S", time.localtime(holder.get("since") or 0))
        Exception.__init__(self,
            f"another Semdex process is updating {uri} (process {holder.get('pid')} on "
            f"{holder.get('host')}, `semdex {holder.get('mode')}` since {since}); search "
            "still works, indexing must wait until it stops")


def _dead_here(row: dict[str, Any]) -> bool:
    """Whether the lease's holder was a process of this machine that is gone (killed before
    it could hand the lease back): no need to wait for its lease to go stale."""
    if row.get("host") != socket.gethostname() or not row.get("pid"):
        return False
    try:
        os.kill(int(row["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError, OverflowError):
        return False  # alive (another user's), or cannot tell
    return False


class Lease:
    """The one writer's claim on a remote data dir, renewed by a daemon thread while held."""

    def __init__(self, db: Any, uri: str, mode: str):
        self.db, self.uri, self.mode = db, uri, mode
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost = False  # set when another process took the lease over (we were stale)
        self._table: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> Lease:
        now = time.time()
        mine = {"slot": "writer", "holder": self.holder, "host": socket.gethostname(),
                "pid": os.getpid(), "mode": self.mode, "since": now, "heartbeat": now}
        try:
            self._table = self.db.open_table(LEASE_TABLE)
        except (ValueError, FileNotFoundError, OSError):
            try:  # the first writer ever: creating the table is the claim
                self._table = self.db.create_table(
                    LEASE_TABLE, data=pa.Table.from_pylist([{**mine, "generation": 1}],
                                                           schema=_LEASE_SCHEMA))
            except (ValueError, OSError):
                self._table = self.db.open_table(LEASE_TABLE)
        row = _lease_row(self._table)
        if row is None or row["holder"] != self.holder:
            if row and row["holder"] and now - (row["heartbeat"] or 0) <= STALE_SECONDS \
                    and not _dead_here(row):
                raise RemoteBusy(self.uri, row)
            gen = row["generation"] if row else 0
            if row is None:
                self._table.add(pa.Table.from_pylist([{**mine, "generation": 1}],
                                                     schema=_LEASE_SCHEMA))
            else:
                # compare-and-set: only one taker moves the generation on from what it read
                self._table.update(where=f"slot = 'writer' AND generation = {int(gen)}",
                                   values={**mine, "generation": int(gen) + 1})
            row = _lease_row(self._table)
            if row is None or row["holder"] != self.holder:
                raise RemoteBusy(self.uri, row or {})
            if gen and row.get("pid") is not None:
                log.info("took over the writer's lease of %s (generation %d)", self.uri, gen)
        self._thread = threading.Thread(target=self._renew, name="semdex-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        beats = 0
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if not self._renew_once():
                return
            beats += 1
            if beats % 90 == 0:  # now and then: drop the lease's old versions
                try:
                    self._table.cleanup_old_versions(timedelta(minutes=5))
                except Exception as exc:
                    log.info("could not clean up the lease's old versions: %s", exc)

    def _renew_once(self) -> bool:
        """One heartbeat; False once the lease is lost (taken over while we were stale)."""
        try:
            self._table.update(where=f"holder = {_sql(self.holder)}",
                               values={"heartbeat": time.time()})
            row = _lease_row(self._table)
        except Exception as exc:  # a network blip: try again at the next beat
            log.warning("could not renew the writer's lease of %s: %s", self.uri, exc)
            return True
        if row is None or row["holder"] != self.holder:
            self.lost = True
            log.error("the writer's lease of %s was taken over by %s: this process went "
                      "too long without renewing it", self.uri, (row or {}).get("host"))
            return False
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._table is not None and not self.lost:
            try:
                self._table.update(where=f"holder = {_sql(self.holder)}",
                                   values={"holder": "", "heartbeat": time.time()})
            except Exception as exc:  # it goes stale and free in STALE_SECONDS instead
                log.warning("could not hand back the writer's lease of %s: %s", self.uri, exc)
        self._table = None
