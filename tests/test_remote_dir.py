"""A data dir on object storage (--data-dir s3://bucket/prefix) against a real S3 server on
loopback: moto's server (the test extra's moto[server]) on 127.0.0.1, which enforces the
conditional PUT Lance commits by. The same index == disk checks as the local store, readers in
other processes, and one writer at a time (the lease in the bucket)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.index import remote_dir
from desktop.index.lock import DataDirBusy
from desktop.index.remote_dir import Lease, RemoteBusy, lease_holder
from desktop.paths import is_remote, resolve_data_dir
from tests.fixtures.documents import make_pdf

ROOT = Path(__file__).resolve().parent.parent

NOTES = """\
Shopping list for the weekend: apples, flour and the good olive oil.

The zebra at the city zoo escaped on Tuesday morning.
Keepers found it grazing in the botanical garden next to the roses.
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """moto's S3 server on 127.0.0.1, and the environment that points Lance (and boto3) at it:
    the credentials and endpoint come from the environment, as they would for a team."""
    pytest.importorskip("moto", reason="the test extra installs moto[server]")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT": endpoint, "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(endpoint, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto did not start:\n" + log.read_text()[-2000:])
                time.sleep(0.2)
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="semdex-team")
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def uri(s3) -> str:
    """A fresh prefix in the bucket for each test."""
    return f"s3://semdex-team/lib-{uuid.uuid4().hex[:8]}"


def _run(engine: Engine, paths=None) -> None:
    progress = list(engine.index(paths))
    assert progress[-1].phase == "done", progress[-1]


def _keyword(engine: Engine, word: str) -> list[str]:
    return sorted(h.path for h in engine.search(word, mode="keyword", k=20, per_file=None))


def _matches_disk(engine: Engine, folder: Path) -> None:
    """What search can return is exactly what is on disk: files table, passages, counts."""
    on_disk = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    files = engine.store.file_rows()
    assert sorted(files) == on_disk
    chunks = engine.store.chunks.to_arrow()
    assert sorted(set(chunks.column("path").to_pylist())) == on_disk
    assert len(chunks) == sum(r.n_chunks for r in files.values())


def test_uris_are_recognised_and_kept_as_given():
    assert is_remote("s3://bucket/p") and is_remote("GS://b") and is_remote("az://c/d")
    assert not is_remote("/home/me/s3:/x") and not is_remote("s3://") and not is_remote(None)
    assert resolve_data_dir("S3://semdex-team/lib/") == "s3://semdex-team/lib"


@pytest.mark.slow
def test_index_sync_and_search_on_s3_match_the_disk(uri, starter_model, tmp_path,
                                                    semdex_dirs):
    docs = tmp_path / "docs"
    docs.mkdir()
    notes = docs / "notes.txt"
    notes.write_text(NOTES, encoding="utf-8")
    make_pdf(docs / "book.pdf", ["Chapter one. The lighthouse keeper lit the great lamp.",
                                 "Chapter two. Volcanic ash cooled the climate."])
    with Engine(uri) as engine:
        assert engine.db_dir == f"{uri}/lancedb" and engine.location == uri
        _run(engine, [docs])
        _matches_disk(engine, docs)
        assert _keyword(engine, "zebra") == [str(notes)]
        hits = engine.search("who looks after the lamp", mode="semantic", k=3)
        assert Path(hits[0].path).name == "book.pdf"

        notes.write_text(NOTES.replace("zebra", "giraffe"), encoding="utf-8")  # an edit
        (docs / "book.pdf").rename(docs / "moved.pdf")  # a rename
        (docs / "new.md").write_text("# Tide tables\n\nHigh water at noon.\n", "utf-8")
        _run(engine)
        _matches_disk(engine, docs)
        assert _keyword(engine, "zebra") == [] and _keyword(engine, "giraffe") == [str(notes)]
        assert _keyword(engine, "lighthouse") == [str(docs / "moved.pdf")]

        (docs / "new.md").unlink()  # a deletion
        _run(engine)
        _matches_disk(engine, docs)
        assert _keyword(engine, "tide") == []
        st = engine.status()
        assert st["data_dir"] == uri and st["files"] == 2
        assert st["folders"][0]["path"] == str(docs) and st["folders"][0]["pending"] == 0
    # the library (state.json) is in the bucket, not on this machine
    assert not (semdex_dirs.data / "state.json").exists()
    with Engine(uri) as again:
        assert list(again.state.folders) == [str(docs)]
        assert again.status()["passages"] > 0


@pytest.mark.slow
def test_a_reader_in_another_process_sees_each_commit(uri, starter_model, tmp_path, s3):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text(NOTES, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}

    def search(word: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "desktop.cli", "search", word, "--mode",
                              "keyword", "--json", "--data-dir", uri], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stderr
        return [Path(r["path"]).name for r in json.loads(out.stdout)["results"]]

    with Engine(uri) as writer:
        _run(writer, [docs])
        assert search("zebra") == ["notes.txt"]
        (docs / "notes.txt").write_text("Only about giraffes now.\n", encoding="utf-8")
        _run(writer)
        assert search("zebra") == [] and search("giraffes") == ["notes.txt"]
    status = subprocess.run([sys.executable, "-m", "desktop.cli", "status", "--json",
                             "--data-dir", uri], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=120)
    st = json.loads(status.stdout)
    assert st["data_dir"] == uri and st["files"] == 1 and st["writer"] is None


def test_one_writer_at_a_time_across_machines(uri, starter_model):
    """The lease in the bucket: a writer elsewhere (another holder) is refused while this one
    holds it, told who holds it; free again once released."""
    with Engine(uri) as engine, engine.writing("watch"):
        db = remote_dir.connect(uri)
        holder = lease_holder(db)
        assert holder and holder["mode"] == "watch" and holder["pid"] == os.getpid()
        assert engine.status()["writer"]["host"] == socket.gethostname()
        with pytest.raises(RemoteBusy, match=r"updating s3://.*`semdex watch`") as exc:
            Lease(db, uri, "index").acquire()
        assert isinstance(exc.value, DataDirBusy)  # what the faces already report
    assert lease_holder(remote_dir.connect(uri)) is None
    other = Lease(remote_dir.connect(uri), uri, "index").acquire()
    other.release()


def test_a_second_process_on_this_machine_is_told_the_uri(uri, starter_model, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("text", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    with Engine(uri) as engine, engine.writing():
        out = subprocess.run([sys.executable, "-m", "desktop.cli", "index", str(docs),
                              "--data-dir", uri], capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=120)
    assert out.returncode == 1
    assert f"another Semdex process is updating {uri}" in out.stderr, out.stderr


def test_a_stale_lease_is_taken_over_and_its_holder_knows(uri, monkeypatch):
    monkeypatch.setattr(remote_dir, "HEARTBEAT_SECONDS", 0.2)
    db = remote_dir.connect(uri)
    first = Lease(db, uri, "watch").acquire()
    first._stop.set()  # a writer that hangs (or lost its network): no more heartbeats
    first._thread.join()
    table = db.open_table(remote_dir.LEASE_TABLE)
    table.update(where="slot = 'writer'", values={"heartbeat": time.time() - 1000})
    assert lease_holder(db) is None  # stale: free
    second = Lease(remote_dir.connect(uri), uri, "index").acquire()
    try:
        assert lease_holder(db)["mode"] == "index"
        first._stop.clear()
        first._renew_once()
        assert first.lost
    finally:
        second.release()
        first.release()  # lost: hands nothing back over the new holder
    assert lease_holder(db) is None


def test_a_lease_left_by_a_killed_process_here_is_taken_at_once(uri, starter_model):
    """kill -9 leaves the lease fresh in the bucket; on the same machine its holder is known
    to be gone, so the next writer does not wait for it to go stale."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    db = remote_dir.connect(uri)
    first = Lease(db, uri, "watch").acquire()
    first._stop.set()
    first._thread.join()
    db.open_table(remote_dir.LEASE_TABLE).update(where="slot = 'writer'",
                                                 values={"pid": proc.pid})
    assert lease_holder(db)["pid"] == proc.pid  # fresh: it looks held
    with Engine(uri) as engine, engine.writing():
        assert lease_holder(db)["pid"] == os.getpid()


def test_concurrent_takers_exactly_one_wins(uri):
    results: list[str] = []
    barrier = threading.Barrier(4)

    def take(i: int) -> None:
        lease = Lease(remote_dir.connect(uri), uri, f"index{i}")
        barrier.wait()
        try:
            lease.acquire()
            results.append("won")
        except RemoteBusy:
            results.append("busy")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["busy", "busy", "busy", "won"]


def test_a_missing_bucket_is_a_clear_error(s3, starter_model):
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    out = subprocess.run([sys.executable, "-m", "desktop.cli", "status", "--data-dir",
                          "s3://no-such-bucket-here/lib"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "s3://no-such-bucket-here/lib" in out.stderr
