"""kill -9 at any moment, then a restart: the index ends equal to the disk.

`semdex index` (and once `semdex watch`) run as real subprocesses on a folder of small text
files and a few PDFs and are killed with SIGKILL at chosen and random moments: while the store
is first created, while passages are written, while a deleted folder's files are forgotten,
while watching. The folder changes between rounds. After every kill the store still opens and
answers `semdex search`; after one clean run it equals the folder exactly: no duplicate
passages, no passages of deleted files, no file marked done without its passages.

SEMDEX_KILL_SEED picks the random moments (the default is fixed).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.index.lock import writer_alive
from tests.fixtures.consistency import assert_index_matches_disk, crash_invariants
from tests.fixtures.documents import make_pdf

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("amber basalt cedar delta ember fjord garnet hollow indigo juniper kelp lagoon "
         "marble nickel opal pumice quartz russet sienna topaz umber violet willow").split()

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def env_for(model_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    env["SEMDEX_MODEL_CACHE"] = str(model_cache)
    return env


class Corpus:
    def __init__(self, root: Path, rng: random.Random):
        self.root, self.rng, self.n = root, rng, 0

    def text(self) -> str:
        self.n += 1
        return (f"Record {self.n} keyword{self.n}: "
                + " ".join(self.rng.choices(WORDS, k=self.rng.randint(6, 24))) + ".\n")

    def create(self) -> None:
        for i in range(5):
            (self.root / f"sub{i}").mkdir(parents=True)
            for _ in range(24):
                self.n += 1
                (self.root / f"sub{i}" / f"n{self.n}.txt").write_text(self.text())
        (self.root / "bulk").mkdir()
        for _ in range(30):
            self.n += 1
            (self.root / "bulk" / f"b{self.n}.md").write_text(self.text())
        for i in range(3):
            make_pdf(self.root / f"book{i}.pdf", [self.text() * 2, self.text() * 2])

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix != ".pdf")

    def mutate(self, n: int = 30) -> None:
        """Edits, deletions, new files, renames, and a folder moved."""
        rng = self.rng
        for _ in range(n):
            files = self.files()
            f = rng.choice(files)
            op = rng.choice(["edit", "edit", "delete", "create", "rename", "copy"])
            if op == "edit":
                f.write_text(self.text())
            elif op == "delete":
                f.unlink()
            elif op == "create":
                self.n += 1
                (f.parent / f"c{self.n}.txt").write_text(self.text())
            elif op == "rename":
                self.n += 1
                os.rename(f, f.parent / f"r{self.n}{f.suffix}")
            else:
                self.n += 1
                shutil.copy(f, f.parent / f"k{self.n}{f.suffix}")
        subs = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("sub"))
        if subs:
            self.n += 1
            os.rename(rng.choice(subs), self.root / f"sub-moved{self.n}")


def versions(data: Path, table: str) -> int:
    """The latest committed version of one of the store's tables (each write commits one)."""
    db = data / "lancedb"
    latest = 0
    try:
        for d in os.listdir(db):
            if d.startswith(table + "_"):
                for name in os.listdir(db / d / "_versions"):
                    if name.endswith(".manifest"):
                        n = int(name.split(".")[0])  # newer LanceDB names count down
                        latest = max(latest, n if n < 2**63 else 2**64 - 1 - n)
    except (FileNotFoundError, ValueError):
        pass
    return latest


def wrote(data: Path) -> Callable[[], bool]:
    """True once either table of the store has a new version."""
    base = versions(data, "files"), versions(data, "chunks")
    return lambda: (versions(data, "files"), versions(data, "chunks")) != base


def rewritten(path: Path) -> Callable[[], bool]:
    """True once path was written again (state.json is, as a run starts indexing)."""
    before = path.stat().st_mtime_ns if path.exists() else 0

    def check() -> bool:
        try:
            return path.stat().st_mtime_ns != before
        except FileNotFoundError:
            return False

    return check


class Killer:
    def __init__(self, data: Path, docs: Path, env: dict[str, str], rng: random.Random):
        self.data, self.docs, self.env, self.rng = data, docs, env, rng
        self.killed = 0
        self.procs: list[subprocess.Popen[str]] = []
        self.log: list[str] = []
        self.t0 = time.monotonic()

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "desktop.cli", "--data-dir", str(self.data), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env,
            cwd=ROOT)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """However the test ends, no semdex process is left behind."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)

    def run_and_kill(self, label: str, when: Callable[[], bool], delay: float,
                     *args: str, timeout: float = 120) -> None:
        """Start semdex ARGS, wait until when() is true, wait `delay` more, kill -9 it."""
        proc = self.start(*(args or ("index", str(self.docs))))
        deadline = time.monotonic() + timeout
        while not when() and proc.poll() is None:
            assert time.monotonic() < deadline, f"{label}: the moment never came"
            time.sleep(0.001)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.killed += 1
        proc.wait(30)
        err = proc.stderr.read() if proc.stderr else ""
        self.log.append(f"{label}: rc {proc.returncode} after {delay:.3f}s "
                        f"(at {time.monotonic() - self.t0:.1f}s)")
        assert proc.returncode in (-signal.SIGKILL, 0), f"{label}: {err}"
        self.check_store_opens(label)

    def check_store_opens(self, label: str) -> None:
        """After any kill the store opens: `semdex search` answers, and so does status."""
        proc = subprocess.run(
            [sys.executable, "-m", "desktop.cli", "--data-dir", str(self.data), "search",
             "keyword3", "--mode", "keyword", "--json"],
            capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=120)
        assert proc.returncode == 0, f"{label}: semdex search: {proc.stderr}"
        json.loads(proc.stdout)
        with Engine(self.data) as engine:
            assert crash_invariants(engine) == [], label
            st = engine.status()
            assert st["writer"] is None, f"{label}: {st['writer']}"
            assert st["folders"] == [] or st["folders"][0]["path"] == str(self.docs)


@pytest.mark.slow
def test_kill_at_random_moments_then_one_clean_run_equals_the_disk(tmp_path, starter_model,
                                                                   model_cache):
    seed = int(os.environ.get("SEMDEX_KILL_SEED", "7"))
    rng = random.Random(seed)
    docs, data = tmp_path / "docs", tmp_path / "data"
    corpus = Corpus(docs, rng)
    corpus.create()
    k = Killer(data, docs, env_for(model_cache), rng)
    try:
        run_rounds(k, corpus, rng)
        check_after_one_clean_run(k, corpus, seed)
    finally:
        k.close()


def check_after_one_clean_run(k: Killer, corpus: Corpus, seed: int) -> None:
    data, docs = k.data, k.docs
    assert k.killed >= 6, k.log  # the kills did land while work was going on
    assert writer_alive(data) is None  # the kernel dropped the dead writers' lock

    proc = k.start("index", str(docs))
    assert proc.wait(180) == 0, proc.stderr.read() if proc.stderr else ""
    try:
        assert_index_matches_disk(data, [docs])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nseed {seed}; {k.log}") from None
    assert writer_alive(data) is None and not (data / "writer.json").exists()
    some = corpus.files()[-1]
    word = some.read_text().split(":")[0].split()[-1]  # its "keywordN"
    hits = subprocess.run(
        [sys.executable, "-m", "desktop.cli", "--data-dir", str(data), "search", word,
         "--json", "--per-file", "0"], capture_output=True, text=True, env=k.env, cwd=ROOT,
        timeout=120)
    assert hits.returncode == 0, hits.stderr
    assert str(some) in {r["path"] for r in json.loads(hits.stdout)["results"]}


def run_rounds(k: Killer, corpus: Corpus, rng: random.Random) -> None:
    data, docs = k.data, k.docs

    # 1. While the store is first created (its very first write).
    k.run_and_kill("first write", lambda: (data / "lancedb").exists(), rng.uniform(0, 0.05))
    # 2. Right after a batch of passages landed, before their files' rows point at them.
    base = versions(data, "chunks")
    k.run_and_kill("passages written", lambda: versions(data, "chunks") > max(base, 1),
                   rng.uniform(0, 0.002))
    # 3. After changes to the folder, while they are read and embedded.
    corpus.mutate(40)
    k.run_and_kill("changed folder", rewritten(data / "state.json"), rng.uniform(0, 0.4))

    # A clean run in the middle: what the kills left is resumed and purged.
    proc = k.start("index", str(docs))
    assert proc.wait(180) == 0, proc.stderr.read() if proc.stderr else ""
    assert_index_matches_disk(data, [docs], vectors=False)

    # 4. While a deleted folder's files are forgotten: file rows first, then passages.
    shutil.rmtree(docs / "bulk")
    first_write = wrote(data)
    k.run_and_kill("deleting", first_write, rng.uniform(0, 0.002))
    # 5. While watching: the start-up scan, then live changes, killed at a random moment.
    corpus.mutate(15)
    proc = k.start("watch", "--quiet", "0.1")
    time.sleep(rng.uniform(2.0, 3.0))
    corpus.mutate(15)
    time.sleep(rng.uniform(0.0, 1.0))
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    k.killed += 1
    k.check_store_opens("watch")
    # 6. Right after file rows were written, before the passages they replace are deleted;
    # then at a random moment. The folder changes in between.
    corpus.mutate(20)
    base = versions(data, "files")
    k.run_and_kill("rows written", lambda: versions(data, "files") > base,
                   rng.uniform(0, 0.002))
    corpus.mutate(20)
    k.run_and_kill("random", rewritten(data / "state.json"), rng.uniform(0, 0.6))


def test_a_table_whose_creation_was_killed_is_created_again(tmp_path):
    """Killed while LanceDB created a table: a folder with no committed version is left. It held
    nothing; the next start must create it, not fail on every command from then on."""
    from desktop.index.store import Store

    db = tmp_path / "db"
    Store(db, "k", 4)
    for table in ("chunks_k", "files_k"):
        versions_dir = db / f"{table}.lance" / "_versions"
        for f in versions_dir.iterdir():
            f.unlink()
    store = Store(db, "k", 4)
    assert store.count_chunks() == 0 and store.file_rows() == {}
    store.write([], [])
    assert Store(db, "k", 4).files.count_rows() == 0
