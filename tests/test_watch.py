"""`semdex watch`: the index follows the folders live, and never lies about them.

Everything is real: a Syncer in a background thread (as `semdex watch` and the GUI run it) with
the real watchdog observer, the real LanceDB store on disk and the real starter model. After
each round of changes the test waits until the syncer is idle, then checks the index against
the disk exactly (tests/fixtures/consistency.py).

The churn test takes its seed from SEMDEX_CHURN_SEED (its length from SEMDEX_CHURN_OPS, and
SEMDEX_CHURN_POLLING=1 runs it with the polling observer), so a failure can be replayed and the
test run many times with other seeds.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.index.lock import DataDirBusy
from desktop.index.sync import SyncSettings
from tests.fixtures.consistency import (
    RunningSyncer,
    assert_index_matches_disk,
    index_differences,
    tree_files,
)
from tests.fixtures.documents import make_corrupt_pdf, make_pdf

ROOT = Path(__file__).resolve().parent.parent
FAST = SyncSettings(quiet=0.2, optimize_after_idle=3600.0)


@pytest.fixture
def make_engine(tmp_path, starter_model):
    engines: list[Engine] = []

    def make(data: str = "data") -> Engine:
        engine = Engine(tmp_path / data)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def keyword(engine: Engine, word: str) -> list[str]:
    """Files (relative to their folder's parent) whose passages hold the word."""
    return sorted({str(Path(h.path).relative_to(Path(h.path).parents[1]))
                   for h in engine.search(word, mode="keyword", k=50, per_file=None)})


def names(engine: Engine) -> set[str]:
    return {Path(p).name for p in engine.store.file_rows()}


def note(i: int, word: str) -> str:
    return (f"Note number {i}. The {word} appears in this note about ordinary things. "
            f"Each note talks about a different subject: {word} is the one here.\n")


def counting_embeds(engine: Engine) -> list[int]:
    """Count the sequences the model embeds from now on (it still embeds them)."""
    calls: list[int] = []
    real = engine.embedder.embed_tokens

    def embed_tokens(sequences, **kw):
        calls.append(len(sequences))
        return real(sequences, **kw)

    engine.embedder.embed_tokens = embed_tokens  # type: ignore[method-assign]
    return calls


def semdex(*args: str, data_dir: Path, timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    return subprocess.run([sys.executable, "-m", "desktop.cli", "--data-dir", str(data_dir),
                           *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout)


# -- create, edit, delete ------------------------------------------------------------------

@pytest.mark.slow
def test_created_edited_and_deleted_files_follow_within_seconds(make_engine, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "old.txt").write_text(note(0, "harpsichord"))
    engine = make_engine()
    with RunningSyncer(engine, [docs], FAST) as rs:
        start = rs.runs[0]
        assert start.files_done == 1 and start.chunks >= 1
        assert keyword(engine, "harpsichord") == ["docs/old.txt"]

        since = rs.mark()
        (docs / "root-level.txt").write_text(note(5, "marimba"))
        runs = rs.wait_idle(since=since)
        assert sum(r.files_done for r in runs) == 1
        # only the file was looked at, not its whole folder again (the parent's "modified")
        assert sum(r.files_unchanged for r in runs) == 0
        (docs / "root-level.txt").unlink()

        t0 = time.monotonic()
        (docs / "sub").mkdir()
        (docs / "sub" / "new.md").write_text("# Travel\n\n" + note(1, "gondola"))
        make_pdf(docs / "book.pdf", ["A chapter about the lighthouse keeper.",
                                     "A chapter about sourdough baking."])
        rs.wait_for(lambda: keyword(engine, "gondola") == ["sub/new.md"], 30, "create")
        rs.wait_for(lambda: keyword(engine, "sourdough") == ["docs/book.pdf"], 30, "create")
        assert time.monotonic() - t0 < 30  # "within seconds", on a busy machine too
        rs.wait_idle()

        (docs / "old.txt").write_text(note(0, "accordion"))
        rs.wait_for(lambda: keyword(engine, "accordion") == ["docs/old.txt"], 30, "edit")
        rs.wait_idle()
        assert keyword(engine, "harpsichord") == []

        (docs / "sub" / "new.md").unlink()
        rs.wait_for(lambda: "new.md" not in names(engine), 30, "delete")
        rs.wait_idle()
        assert keyword(engine, "gondola") == []
        hit = engine.search("how to bake bread", mode="semantic", k=1)[0]
        assert (Path(hit.path).name, hit.page) == ("book.pdf", 2)

        (folder,) = engine.status()["folders"]
        assert folder["watcher_live"] is True and folder["pending"] == 0
        assert folder["files_indexed"] == 2 and folder["passages"] >= 3
        assert_index_matches_disk(engine, [docs])
    (folder,) = engine.status()["folders"]
    assert folder["watcher_live"] is False


# -- moves reuse passages --------------------------------------------------------------------

@pytest.mark.slow
def test_renames_and_folder_moves_reuse_passages(make_engine, tmp_path):
    docs = tmp_path / "docs"
    alpha = docs / "projects" / "alpha"
    alpha.mkdir(parents=True)
    (docs / "archive").mkdir()
    words = ["pelican", "quasar", "tamarind", "umbrella", "violin"]
    for i, w in enumerate(words):
        (alpha / f"a{i}.txt").write_text(note(i, w) * 3)
    (docs / "loose.txt").write_text(note(9, "walrus"))
    engine = make_engine()
    with RunningSyncer(engine, [docs], FAST) as rs:
        count = engine.store.count_chunks()
        calls = counting_embeds(engine)

        # a renamed file
        since = rs.mark()
        os.rename(docs / "loose.txt", docs / "renamed.txt")
        runs = rs.wait_idle(since=since)
        assert sum(r.files_reused for r in runs) == 1
        assert sum(r.tokens for r in runs) == 0 and sum(r.files_removed for r in runs) == 1
        assert keyword(engine, "walrus") == ["docs/renamed.txt"]

        # a whole folder moved elsewhere (and renamed on the way)
        since = rs.mark()
        shutil.move(alpha, docs / "archive" / "alpha-2023")
        runs = rs.wait_idle(since=since)
        assert sum(r.files_reused for r in runs) == 5
        assert sum(r.tokens for r in runs) == 0 and sum(r.files_removed for r in runs) == 5
        assert keyword(engine, "quasar") == ["alpha-2023/a1.txt"]
        assert not any("projects" in p for p in engine.store.file_rows())

        # a file moved into another folder, and a copy
        since = rs.mark()
        os.rename(docs / "renamed.txt", docs / "archive" / "walrus.txt")
        shutil.copy(docs / "archive" / "alpha-2023" / "a4.txt", docs / "copy.txt")
        runs = rs.wait_idle(since=since)
        assert sum(r.files_reused for r in runs) == 2 and sum(r.tokens for r in runs) == 0
        assert keyword(engine, "violin") == ["alpha-2023/a4.txt", "docs/copy.txt"]

        assert calls == [], "moved files must not be embedded again"
        assert engine.store.count_chunks() == count + engine.store.file_rows()[
            str(docs / "copy.txt")].n_chunks
        assert_index_matches_disk(engine, [docs])


# -- editors ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_folders_renamed_while_being_filled_keep_being_watched(make_engine, tmp_path):
    """mkdir a; mv a b; mkdir b/sub; mv b c, quickly: watchdog adds the watch for b/sub under
    a path that is already gone, so nothing made in c/sub is reported later. The watcher must
    notice that folders moved and renew its watches."""
    docs = tmp_path / "docs"
    docs.mkdir()
    engine = make_engine()
    with RunningSyncer(engine, [docs], FAST) as rs:
        for i in range(30):  # (these pauses lose the race about half of the time)
            os.mkdir(docs / f"a{i}")
            time.sleep(0.005)
            os.rename(docs / f"a{i}", docs / f"b{i}")
            time.sleep(0.005)
            os.mkdir(docs / f"b{i}" / "sub")
            os.rename(docs / f"b{i}", docs / f"c{i}")
        rs.wait_idle()
        for i in range(30):  # long after the moves
            (docs / f"c{i}" / "sub" / "late.txt").write_text(note(i, f"latecomer{i}"))
        rs.wait_for(lambda: len(engine.store.file_rows()) == 30, 30, "30 files")
        rs.wait_idle()
        assert_index_matches_disk(engine, [docs], vectors=False)


@pytest.mark.slow
def test_editor_save_patterns_end_with_the_saved_text(make_engine, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    target = docs / "x.txt"
    target.write_text(note(1, "anemone"))
    engine = make_engine()
    with RunningSyncer(engine, [docs], FAST) as rs:
        # Atomic save: write a hidden temp file, then rename it over the original.
        swap = docs / ".x.txt.swp"
        swap.write_text("swap file of the editor: xylophone xylophone")
        tmp = docs / ".x.txt.tmp123"
        tmp.write_text(note(1, "begonia"))
        os.replace(tmp, target)
        swap.unlink()
        rs.wait_for(lambda: keyword(engine, "begonia") == ["docs/x.txt"], 30, "atomic save")
        rs.wait_idle()

        # Backup save (vim): the original is renamed to x.txt~, a new x.txt written, the backup
        # deleted.
        os.rename(target, docs / "x.txt~")
        target.write_text(note(1, "camellia"))
        (docs / "x.txt~").unlink()
        rs.wait_for(lambda: keyword(engine, "camellia") == ["docs/x.txt"], 30, "backup save")
        rs.wait_idle()

        # A visible temp file with a supported name, renamed over the original.
        tmp = docs / "x.txt.part.txt"
        tmp.write_text(note(1, "dahlia"))
        os.replace(tmp, target)
        rs.wait_for(lambda: keyword(engine, "dahlia") == ["docs/x.txt"], 30, "temp rename")
        rs.wait_idle()

        # Several writes in a row: the last one wins.
        for word in ["edelweiss", "freesia", "gardenia", "hyacinth", "iris"]:
            target.write_text(note(1, word))
            time.sleep(0.03)
        rs.wait_for(lambda: keyword(engine, "iris") == ["docs/x.txt"], 30, "several writes")
        rs.wait_idle()
        for gone in ["anemone", "begonia", "camellia", "dahlia", "edelweiss", "hyacinth",
                     "xylophone"]:
            assert keyword(engine, gone) == [], gone
        assert names(engine) == {"x.txt"}
        assert_index_matches_disk(engine, [docs])


@pytest.mark.slow
def test_file_written_slowly_is_indexed_once_it_settles(make_engine, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    engine = make_engine()
    settings = SyncSettings(quiet=0.8, optimize_after_idle=3600.0)
    with RunningSyncer(engine, [docs], settings) as rs:
        path = docs / "slow.txt"
        pieces = [f"Piece {i}: the slowly written file mentions ingredient{i}.\n"
                  for i in range(20)]
        since = rs.mark()
        with open(path, "w", encoding="utf-8") as f:
            for piece in pieces:  # 20 pieces over 2 s, each flushed to disk
                f.write(piece)
                f.flush()
                time.sleep(0.1)
        runs = rs.wait_idle(since=since)
        assert len(runs) == 1, [(r.files_done, r.files_pending) for r in runs]
        assert runs[0].files_done == 1 and runs[0].files_pending == 0
        assert keyword(engine, "ingredient19") == ["docs/slow.txt"]
        assert keyword(engine, "ingredient0") == ["docs/slow.txt"]
        assert_index_matches_disk(engine, [docs])

        # One that never stops changing (a log) is indexed as it settles, never half-read.
        settings.max_wait = 1.0
        since = rs.mark()
        with open(docs / "log.txt", "w", encoding="utf-8") as f:
            for i in range(60):  # 3 s of writes, past max_wait
                f.write(f"log line {i} says checkpoint{i}\n")
                f.flush()
                time.sleep(0.05)
        rs.wait_idle(since=since)
        assert keyword(engine, "checkpoint59") == ["docs/log.txt"]
        assert_index_matches_disk(engine, [docs])


def test_rewrite_that_keeps_size_and_mtime_is_still_seen(make_engine, tmp_path):
    """A rewrite within one tick of the file system's clock, or by a tool that restores the
    mtime, looks unchanged by stat: the watcher's word that the file changed must win."""
    docs = tmp_path / "docs"
    docs.mkdir()
    path = docs / "same.txt"
    path.write_text(note(1, "oregano"))
    engine = make_engine()
    with RunningSyncer(engine, [docs], FAST) as rs:
        st = path.stat()
        path.write_text(note(1, "saffron"))  # same length
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_size == st.st_size
        rs.wait_for(lambda: keyword(engine, "saffron") == ["docs/same.txt"], 30, "rewrite")
        rs.wait_idle()
        assert keyword(engine, "oregano") == []
        assert_index_matches_disk(engine, [docs])


def test_data_dir_inside_a_watched_folder_is_left_alone(make_engine, tmp_path):
    """The home folder holds the data dir on macOS and Windows: watching it must not index the
    index, nor sync forever because every sync (and heartbeat) writes to the data dir."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text(note(1, "tarragon"))
    engine = make_engine("home/AppData/semdex")
    settings = SyncSettings(quiet=0.2, heartbeat=0.3, optimize_after_idle=3600.0)
    with RunningSyncer(engine, [home], settings) as rs:
        syncs = rs.syncer.syncs
        time.sleep(2.0)  # several heartbeats write the data dir's writer.json meanwhile
        assert rs.syncer.syncs == syncs
        since = rs.mark()
        (home / "more.txt").write_text(note(2, "thyme"))
        runs = rs.wait_idle(since=since)
        assert len(runs) == 1 and rs.syncer.syncs == syncs + 1
        assert names(engine) == {"notes.txt", "more.txt"}
        assert_index_matches_disk(engine, [home], excludes=[engine.own_files])
        (folder,) = engine.status()["folders"]
        assert folder["pending"] == 0


def test_status_probes_never_make_the_writer_fail(tmp_path):
    """`status` probes the lock by taking it for an instant; a writer starting at that very
    moment must not be told that another process is writing."""
    from desktop.index.lock import WriterLock

    data = tmp_path / "data"
    data.mkdir()
    prober = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom desktop.index.lock import writer_alive\n"
         "end = time.monotonic() + 60\nprint('ready', flush=True)\n"
         "while time.monotonic() < end: writer_alive(sys.argv[1])", str(data)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert prober.stdout is not None and prober.stdout.readline() == "ready\n"
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            with WriterLock(data, "index"):
                pass
    finally:
        prober.kill()
        prober.wait()


# -- exclusions and odd trees --------------------------------------------------------------

def test_exclusions_are_never_indexed(make_engine, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()

    def excluded_tree(base: Path, tag: str) -> None:
        for rel in [f".hidden/a-{tag}.txt", f".git/notes-{tag}.txt", f"drafts/plan-{tag}.txt",
                    f"node_modules/pkg/readme-{tag}.md", f"b-{tag}.secret.txt",
                    f".dotfile-{tag}.txt"]:
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"Excluded {tag} content: forbiddenword{tag}.\n")
        env = base / f"pyenv-{tag}"  # a virtual environment, whatever its name
        env.mkdir()
        (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (env / "lib").mkdir()
        (env / "lib" / f"notes-{tag}.txt").write_text(f"Venv content: forbiddenword{tag}.\n")
        (env / f"top-{tag}.txt").write_text(f"Venv content: forbiddenword{tag}.\n")

    excluded_tree(docs, "start")
    (docs / "visible.txt").write_text(note(1, "kumquat"))
    (docs / "sub").mkdir()
    engine = make_engine()
    excludes = ["drafts", "*.secret.txt"]
    with RunningSyncer(engine, [docs], FAST, excludes=excludes) as rs:
        assert names(engine) == {"visible.txt"}
        since = rs.mark()
        excluded_tree(docs / "sub", "live")  # all made while watching, in watched folders
        (docs / "sub" / "shown.txt").write_text(note(2, "lychee"))
        (docs / "pyenv-start" / "lib" / "later.txt").write_text("Venv: forbiddenwordlater.")
        rs.wait_for(lambda: "shown.txt" in names(engine), 30, "the visible file")
        rs.wait_idle(since=since)
        assert names(engine) == {"visible.txt", "shown.txt"}
        for tag in ("start", "live", "later"):
            assert keyword(engine, f"forbiddenword{tag}") == [], tag
        assert_index_matches_disk(engine, [docs], excludes=excludes)

        # a visible folder hidden by a rename loses its passages; a hidden one shown gains
        os.rename(docs / "sub", docs / ".now-hidden")
        os.rename(docs / ".hidden", docs / "now-shown")
        rs.wait_for(lambda: "shown.txt" not in names(engine), 30, "hiding")
        rs.wait_idle()
        assert names(engine) == {"visible.txt", "a-start.txt"}
        assert keyword(engine, "forbiddenwordstart") == ["now-shown/a-start.txt"]
        assert_index_matches_disk(engine, [docs], excludes=excludes)


@pytest.mark.slow
def test_symlink_loops_do_not_hang_the_scan_or_the_watcher(make_engine, tmp_path):
    docs = tmp_path / "docs"
    (docs / "a" / "b").mkdir(parents=True)
    (docs / "a" / "b" / "deep.txt").write_text(note(1, "mango"))
    os.symlink(docs, docs / "a" / "b" / "up")  # two loops: following links would never end
    os.symlink(docs / "a", docs / "a" / "b" / "again")
    os.symlink(docs / "a" / "b" / "deep.txt", docs / "link.txt")  # a link to a file is read
    engine = make_engine()
    for settings in (FAST, SyncSettings(quiet=0.2, polling=True, poll_interval=0.3,
                                        optimize_after_idle=3600.0)):
        t0 = time.monotonic()
        with RunningSyncer(engine, [docs], settings) as rs:
            assert time.monotonic() - t0 < 60  # a followed loop would never end
            word = "nectarine" if settings.polling else "papaya"
            (docs / "a" / "b" / f"{word}.txt").write_text(note(2, word))
            rs.wait_for(lambda w=word: keyword(engine, w) == [f"b/{w}.txt"], 30, "a new file")
            rs.wait_idle()
            assert keyword(engine, "mango") == ["b/deep.txt", "docs/link.txt"]
            assert_index_matches_disk(engine, [docs])


@pytest.mark.slow
def test_polling_mode_follows_changes(make_engine, tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "one.txt").write_text(note(1, "raspberry"))
    engine = make_engine()
    settings = SyncSettings(quiet=0.2, polling=True, poll_interval=0.3,
                            optimize_after_idle=3600.0)
    with RunningSyncer(engine, [docs], settings) as rs:
        assert all(type(o).__name__.startswith("PollingObserver")
                   for o in rs.syncer.watcher._observers)
        (docs / "two.txt").write_text(note(2, "strawberry"))
        rs.wait_for(lambda: keyword(engine, "strawberry") == ["docs/two.txt"], 30, "create")
        (docs / "sub" / "one.txt").write_text(note(1, "blackcurrant"))
        rs.wait_for(lambda: keyword(engine, "blackcurrant") == ["sub/one.txt"], 30, "edit")
        # the edit's rows are searchable a moment before its sync is recorded as finished:
        # let it finish, so that the edit's tokens are not counted against the move
        rs.wait_idle()
        since = rs.mark()
        os.rename(docs / "sub", docs / "moved")
        (docs / "two.txt").unlink()
        rs.wait_for(lambda: names(engine) == {"one.txt"} and keyword(
            engine, "blackcurrant") == ["moved/one.txt"], 30, "move and delete")
        runs = rs.wait_idle(since=since)
        assert sum(r.files_reused for r in runs) == 1 and sum(r.tokens for r in runs) == 0
        assert_index_matches_disk(engine, [docs])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
@pytest.mark.parametrize("limit", ["watches", "instances"])
def test_folder_the_system_cannot_watch_is_walked_instead(make_engine, tmp_path, monkeypatch,
                                                          limit):
    # Linux allows a user so many inotify watches (one per folder) and instances. Past them
    # the kernel calls fail (ENOSPC, EMFILE) and watchdog's observer cannot be made or started.
    # The folder is then kept in sync by walking it, and the log says which limit to raise.
    import threading

    from watchdog.observers import inotify_c

    def refused(*args):
        ctypes.set_errno(errno.ENOSPC if limit == "watches" else errno.EMFILE)
        return -1

    name = "inotify_add_watch" if limit == "watches" else "inotify_init"
    monkeypatch.setattr(inotify_c, name, refused)
    monkeypatch.setattr("desktop.index.watcher.FALLBACK_POLL_SECONDS", 0.3)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one.txt").write_text(note(1, "gooseberry"))
    engine = make_engine()
    threads = {t.ident for t in threading.enumerate()}
    with RunningSyncer(engine, [docs], FAST) as rs:
        watcher = rs.syncer.watcher
        reason = {"watches": "watch", "instances": "instance"}[limit]
        assert watcher.polled == {str(docs): f"inotify {reason} limit reached"}
        assert watcher.live and all(type(o).__name__.startswith("PollingObserver")
                                    for o in watcher._observers)
        (docs / "two.txt").write_text(note(2, "elderberry"))
        rs.wait_for(lambda: keyword(engine, "elderberry") == ["docs/two.txt"], 30, "create")
        (docs / "one.txt").unlink()
        rs.wait_for(lambda: keyword(engine, "gooseberry") == [], 30, "delete")
        rs.wait_idle()
        assert_index_matches_disk(engine, [docs])
    # The observer that failed left no reader thread behind.
    left = [t.name for t in threading.enumerate()
            if t.ident not in threads and not t.name.startswith("LanceDB")]
    assert left == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_a_subfolder_past_the_watch_limit_is_caught_by_the_periodic_walk(make_engine, tmp_path,
                                                                         monkeypatch):
    # Past the inotify watch limit on a subfolder, watchdog 7.0 and 7.1.0 quietly leave it
    # unwatched (only the top folder's failure is raised): no event ever comes from it, and
    # every folder is walked again now and then (every 10 minutes; here every second), which
    # finds what changed there. watchdog 6.0 and 7.1.1+ raise for the whole tree instead: the
    # folder is then polled (every 10 s). Either way the change is found.
    from watchdog.observers import inotify_c

    real_add_watch = inotify_c.inotify_add_watch

    def limited(fd, path, mask):
        if os.fsdecode(path).endswith(os.sep + "deep"):
            ctypes.set_errno(errno.ENOSPC)
            return -1
        return real_add_watch(fd, path, mask)

    monkeypatch.setattr(inotify_c, "inotify_add_watch", limited)
    docs = tmp_path / "docs"
    (docs / "deep").mkdir(parents=True)
    (docs / "top.txt").write_text(note(1, "rowanberry"))
    engine = make_engine()
    settings = SyncSettings(quiet=0.2, optimize_after_idle=3600.0, rescan_every=1.0)
    with RunningSyncer(engine, [docs], settings) as rs:
        polled = rs.syncer.watcher.polled
        assert polled in ({}, {str(docs): "inotify watch limit reached"}), polled
        (docs / "deep" / "unseen.txt").write_text(note(2, "salmonberry"))
        rs.wait_for(lambda: keyword(engine, "salmonberry") == ["deep/unseen.txt"], 30,
                    "the periodic walk")
        rs.wait_idle()
        assert_index_matches_disk(engine, [docs])


@pytest.mark.slow
def test_a_failing_sync_is_tried_again_and_nothing_is_lost(make_engine, tmp_path, caplog):
    # The disk fills up while watching: the store's writes fail. The watcher keeps going, the
    # failed paths stay pending and are tried again after a back-off, and once writes work
    # again the index catches up; nothing half-written is ever shown.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one.txt").write_text(note(1, "mulberry"))
    engine = make_engine()
    settings = SyncSettings(quiet=0.2, optimize_after_idle=3600.0, retry_first=0.3)
    with RunningSyncer(engine, [docs], settings) as rs:
        # The disk fills between a write's passages and its file rows: the passages are in,
        # never shown (no row vouches for them), and must not be doubled by the retry.
        real_upsert, fails = engine.store._upsert_files, []

        def full_disk(*args, **kw):
            if len(fails) < 3:
                fails.append(time.monotonic())
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_upsert(*args, **kw)

        engine.store._upsert_files = full_disk
        (docs / "two.txt").write_text(note(2, "cloudberry"))
        (docs / "one.txt").write_text(note(1, "lingonberry"))
        rs.wait_for(lambda: keyword(engine, "cloudberry") == ["docs/two.txt"], 60, "retry")
        rs.wait_idle()
        assert len(fails) == 3
        gaps = [b - a for a, b in zip(fails, fails[1:], strict=False)]
        assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # backing off: 0.3 s, then 0.6 s
        errors = [r for r in caplog.records if "sync failed" in r.getMessage()]
        assert len(errors) == 3 and "No space left" in errors[0].getMessage()
        assert keyword(engine, "lingonberry") == ["docs/one.txt"]
        assert keyword(engine, "mulberry") == []
        assert_index_matches_disk(engine, [docs])


def test_folders_another_process_added_are_watched_not_forgotten(make_engine, tmp_path):
    # A window whose engine read the state file before `semdex index THEIRS` ran in another
    # process (it stood paused) starts its sync: THEIRS joins its library, keeps its index and
    # is watched, instead of being forgotten as a folder no longer wanted.
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    (mine / "m.txt").write_text(note(1, "damson"))
    (theirs / "t.txt").write_text(note(2, "greengage"))
    window = make_engine()
    list(window.index([mine]))
    other = make_engine()
    list(other.index([theirs]))
    with RunningSyncer(window, [], FAST) as rs:
        assert keyword(window, "greengage") == ["theirs/t.txt"]
        (theirs / "t2.txt").write_text(note(3, "sloe"))
        rs.wait_for(lambda: keyword(window, "sloe") == ["theirs/t2.txt"], 30, "watched")
        rs.wait_idle()
        assert_index_matches_disk(window, [mine, theirs])


QUEUE_LIMIT = Path("/proc/sys/fs/inotify/max_queued_events")


@pytest.mark.slow
@pytest.mark.skipif(not (QUEUE_LIMIT.exists() and os.access(QUEUE_LIMIT, os.W_OK)),
                    reason="needs Linux and root, to shrink the kernel's inotify queue")
def test_changes_lost_when_the_event_queue_overflows_are_still_indexed(make_engine, tmp_path,
                                                                       caplog):
    # A burst of changes (an unzip, a checkout) can overflow the kernel's inotify queue: the
    # events are dropped. Here the queue of the watcher's inotify instance holds 8 events (the
    # limit is read when an instance is made, and set back at once), so a burst of files
    # overflows it for real.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.txt").write_text(note(0, "quince"))
    engine = make_engine()
    saved = QUEUE_LIMIT.read_text()
    QUEUE_LIMIT.write_text("8\n")
    try:
        rs = RunningSyncer(engine, [docs], FAST)
        rs.thread.start()
        rs.wait_for(lambda: rs.syncer.watcher is not None and rs.syncer.watcher.live, 60,
                    "the watcher")
    finally:
        QUEUE_LIMIT.write_text(saved)
    try:
        rs.wait_idle(120)
        # Into a folder already watched (a new folder is walked when it appears anyway).
        for i in range(1, 200):
            (docs / f"n{i:03d}.txt").write_text(note(i, f"medlar{i}"))
        (docs / "first.txt").unlink()
        rs.wait_idle(120, settle=2.0)
        assert any("overflow" in r.getMessage() for r in caplog.records), "no overflow"
        assert keyword(engine, "medlar199") == ["docs/n199.txt"]
        assert keyword(engine, "quince") == []
        assert_index_matches_disk(engine, [docs])
    finally:
        rs.stop()


# -- one writer; status ----------------------------------------------------------------------

@pytest.mark.slow
def test_one_writer_while_watching_search_and_status_still_work(make_engine, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zoo.txt").write_text("The zebra at the city zoo escaped on Tuesday morning.\n")
    make_corrupt_pdf(docs / "corrupt.pdf")
    engine = make_engine()
    data = engine.data_dir
    with RunningSyncer(engine, [docs], FAST) as rs:
        other = Engine(data)
        try:
            with pytest.raises(DataDirBusy, match=r"semdex watch.*search still works"):
                list(other.index([docs]))
        finally:
            other.close()
        busy = [subprocess.Popen([sys.executable, "-m", "desktop.cli", "--data-dir", str(data),
                                  cmd, str(docs)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=ROOT)
                for cmd in ("index", "watch")]
        try:
            search = semdex("search", "escaped animal", "--json", data_dir=data)
            status = semdex("status", "--json", data_dir=data)
            for proc in busy:
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 1, err
                lines = err.strip().splitlines()
                assert lines[-1].startswith("semdex: another Semdex process is updating"), err
                assert f"process {os.getpid()}" in lines[-1] and "Traceback" not in err
        finally:
            for proc in busy:  # a second writer that was let in must not outlive the test
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert search.returncode == 0, search.stderr
        hits = json.loads(search.stdout)["results"]
        assert Path(hits[0]["path"]).name == "zoo.txt"
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        assert st["writer"]["mode"] == "watch" and st["writer"]["pid"] == os.getpid()
        (folder,) = st["folders"]
        assert folder["watcher_live"] is True and folder["pending"] == 0
        assert (folder["files_indexed"], folder["files_failed"]) == (1, 1)
        assert folder["passages"] == engine.store.count_chunks() >= 1
        assert folder["last_sync"] is not None
        assert [(Path(p["path"]).name, p["status"]) for p in folder["problems"]] == [
            ("corrupt.pdf", "failed")]
        assert folder["problems"][0]["reason"]

        since = rs.mark()
        (docs / "new.txt").write_text(note(3, "ocelot"))
        rs.wait_idle(since=since)
        last = json.loads(semdex("status", "--json", data_dir=data).stdout)["folders"][0]
        assert last["files_indexed"] == 2 and last["pending"] == 0
        assert last["last_sync"] > folder["last_sync"]
    st = engine.status()
    assert st["writer"] is None
    (folder,) = st["folders"]
    assert folder["watcher_live"] is False and folder["pending"] == 0
    (docs / "zoo.txt").write_text("Edited while nobody watches.\n")
    (folder,) = engine.status()["folders"]
    assert folder["pending"] == 1 and folder["pending_files"] == [str(docs / "zoo.txt")]
    assert list(engine.index([docs]))[-1].phase == "done"  # the data dir is writable again


def test_changes_made_while_not_watching_are_caught_up(make_engine, tmp_path):
    docs = tmp_path / "docs"
    (docs / "keep").mkdir(parents=True)
    (docs / "move-me").mkdir()
    for i in range(4):
        (docs / "keep" / f"k{i}.txt").write_text(note(i, f"keepword{i}"))
        (docs / "move-me" / f"m{i}.txt").write_text(note(i, f"moveword{i}") * 2)
    (docs / "edit.txt").write_text(note(7, "before"))
    (docs / "delete.txt").write_text(note(8, "deleteword"))
    engine = make_engine()
    with RunningSyncer(engine, [docs], FAST):
        pass

    (docs / "edit.txt").write_text(note(7, "after"))
    (docs / "delete.txt").unlink()
    shutil.move(docs / "move-me", docs / "keep" / "moved")
    (docs / "new.txt").write_text(note(9, "newword"))
    calls = counting_embeds(engine)
    with RunningSyncer(engine, [], FAST) as rs:  # no paths: the folders already added
        start = rs.runs[0]
        assert (start.files_unchanged, start.files_reused, start.files_removed) == (4, 4, 5)
        assert start.files_done == 4 + 2  # the moved files, the edited one, the new one
        assert sum(calls) == start.chunks >= 2  # only the edited and the new file embedded
        assert keyword(engine, "moveword2") == ["moved/m2.txt"]
        assert keyword(engine, "before") == [] and keyword(engine, "deleteword") == []
        assert_index_matches_disk(engine, [docs])


# -- the checker can fail --------------------------------------------------------------------

def test_consistency_check_sees_every_kind_of_lie(make_engine, tmp_path):
    import pyarrow as pa

    from desktop.index.store import chunk_schema

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"f{i}.txt").write_text(note(i, f"word{i}") * 4)
    engine = make_engine()
    assert list(engine.index([docs]))[-1].phase == "done"
    assert index_differences(engine, [docs]) == []
    store = engine.store
    rows = store.file_rows()
    f0 = rows[str(docs / "f0.txt")]
    passages = store.passages_of(f0.file_id, f0.hash)

    def lies(kind: str, vectors: bool = False) -> list[str]:
        diffs = index_differences(engine, [docs], vectors=vectors)
        assert diffs, kind
        return diffs

    # a duplicate passage
    store.chunks.add(pa.Table.from_pylist([passages[0]], schema=chunk_schema(store.dims)))
    assert any("stored 2 times" in d for d in lies("duplicate"))
    store.chunks.delete(f"id = '{passages[0]['id']}'")
    store.chunks.add(pa.Table.from_pylist([passages[0]], schema=chunk_schema(store.dims)))
    assert index_differences(engine, [docs], vectors=False) == []
    # a passage with a wrong vector
    wrong = {**passages[0], "vector": passages[-1]["vector"] if len(passages) > 1 else
             [1.0] + [0.0] * (store.dims - 1)}
    store.chunks.delete(f"id = '{passages[0]['id']}'")
    store.chunks.add(pa.Table.from_pylist([wrong], schema=chunk_schema(store.dims)))
    assert any("vector is not its text's" in d for d in lies("vector", vectors=True))
    store.chunks.delete(f"id = '{passages[0]['id']}'")
    assert any("row counts" in d for d in lies("missing passage"))
    store.chunks.add(pa.Table.from_pylist([passages[0]], schema=chunk_schema(store.dims)))
    # an orphan passage of an older version
    store.chunks.add(pa.Table.from_pylist([{**passages[0], "hash": "0" * 32, "id": "x:0"}],
                                          schema=chunk_schema(store.dims)))
    assert any("is of version" in d for d in lies("orphan"))
    store.purge_orphans()
    assert index_differences(engine, [docs], vectors=False) == []
    # a passage whose text is not the file's
    where = f"id = '{passages[0]['id']}'"
    store.chunks.update(where=where, values={"text": "tampered"})
    assert any("passage 0 text 'tampered'" in d for d in lies("text"))
    store.chunks.update(where=where, values={"text": passages[0]["text"]})
    # a file row that says done, with no passages at all
    store.chunks.delete(f"file_id = '{f0.file_id}'")
    assert any("f0.txt: row counts" in d for d in lies("no passages"))
    assert list(engine.index())[-1].phase == "done"  # the start-up check repairs it
    assert index_differences(engine, [docs], vectors=False) == []
    # a file changed, added, or deleted behind the index's back
    (docs / "f1.txt").write_text("changed")
    (docs / "f9.txt").write_text("new")
    (docs / "f2.txt").unlink()
    diffs = lies("disk")
    assert any("f1.txt: row says size" in d for d in diffs)
    assert any(d == f"on disk but not indexed: {docs / 'f9.txt'}" for d in diffs)
    assert any(d.startswith(f"indexed but not on disk: {docs / 'f2.txt'}") for d in diffs)
    assert list(engine.index())[-1].phase == "done"
    assert index_differences(engine, [docs]) == []


# -- the churn test ------------------------------------------------------------------------

WORDS = ("apple river stone cloud tiger lamp forest violin copper meadow harbor lantern "
         "orchid glacier falcon saddle tundra pepper velvet canyon beacon thistle mosaic "
         "ember quill nutmeg prairie walnut zephyr").split()


class Churn:
    """Random file-system changes under the watched folders, like a person (and their tools)
    at work; files and folders also move between the watched folders, and out and back in."""

    def __init__(self, roots: list[Path], outside: Path, rng: random.Random):
        self.roots, self.outside, self.rng = roots, outside, rng
        self.n = 0
        self.log: list[str] = []

    def text(self) -> str:
        self.n += 1
        words = self.rng.choices(WORDS, k=self.rng.randint(8, 40))
        return f"Document {self.n} token{self.n}: " + " ".join(words) + ".\n"

    def dirs(self) -> list[Path]:
        return self.roots + sorted(p for r in self.roots for p in r.rglob("*") if p.is_dir())

    def files(self) -> list[Path]:
        return sorted(p for r in self.roots for p in r.rglob("*") if p.is_file())

    def new_name(self, folder: Path, suffix: str = ".txt") -> Path:
        self.n += 1
        return folder / f"f{self.n}{self.rng.choice([suffix, '.md', '.txt'])}"

    def step(self) -> None:
        rng = self.rng
        ops = [("create", 25), ("edit", 20), ("rename", 10), ("move", 10), ("delete", 10),
               ("flash", 5), ("atomic", 5), ("copy", 3), ("touch", 3), ("mkdir", 3),
               ("movedir", 3), ("rmdir", 1), ("out", 2), ("in", 2)]
        op = rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        files, dirs = self.files(), self.dirs()
        if not files and op not in ("create", "mkdir", "in"):
            op = "create"
        f = rng.choice(files) if files else None
        if op == "create":
            path = self.new_name(rng.choice(dirs))
            path.write_text(self.text())
        elif op == "edit":
            if rng.random() < 0.5:
                f.write_text(self.text())
            else:
                with open(f, "a") as fh:
                    fh.write(self.text())
        elif op == "rename":
            path = self.new_name(f.parent)
            os.rename(f, path)
        elif op == "move":
            path = rng.choice(dirs) / f.name
            if not path.exists():
                os.rename(f, path)
        elif op == "delete":
            f.unlink()
        elif op == "flash":  # a file that lives for a moment
            path = self.new_name(rng.choice(dirs))
            path.write_text(self.text())
            time.sleep(rng.uniform(0, 0.05))
            path.unlink()
        elif op == "atomic":
            tmp = f.parent / f".{f.name}.tmp"
            tmp.write_text(self.text())
            os.replace(tmp, f)
        elif op == "copy":
            shutil.copy(f, self.new_name(rng.choice(dirs)))
        elif op == "touch":
            st = f.stat()
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        elif op == "mkdir":
            self.n += 1
            (rng.choice(dirs) / f"d{self.n}").mkdir()
        elif op in ("movedir", "rmdir"):
            movable = [d for d in dirs if d not in self.roots]
            if not movable:
                return
            d = rng.choice(movable)
            if op == "rmdir":
                shutil.rmtree(d)
            else:
                self.n += 1
                targets = [t for t in dirs if t != d and d not in t.parents]
                os.rename(d, rng.choice(targets) / f"d{self.n}")
        elif op == "out":  # moved out of the watched folder
            os.rename(f, self.outside / f"o{self.n}{f.suffix}")
            self.n += 1
        elif op == "in":  # moved in from outside
            away = sorted(self.outside.iterdir())
            if away:
                os.rename(away[0], self.new_name(rng.choice(dirs)))
        self.log.append(op)


@pytest.mark.slow
def test_churn_index_equals_the_folder_after_random_changes(make_engine, tmp_path):
    seed = int(os.environ.get("SEMDEX_CHURN_SEED", "20240611"))
    n_ops = int(os.environ.get("SEMDEX_CHURN_OPS", "300"))
    polling = os.environ.get("SEMDEX_CHURN_POLLING") == "1"  # the same churn, polled
    rng = random.Random(seed)
    docs, more, outside = tmp_path / "docs", tmp_path / "more", tmp_path / "outside"
    outside.mkdir()
    churn = Churn([docs, more], outside, rng)
    for d in ["docs", "docs/a", "docs/a/aa", "docs/b", "docs/c/cc/ccc", "more", "more/m"]:
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    for _ in range(60):
        churn.new_name(rng.choice(churn.dirs())).write_text(churn.text())
    engine = make_engine()
    settings = SyncSettings(quiet=0.2, polling=polling, poll_interval=0.3,
                            optimize_after_idle=3600.0)
    with RunningSyncer(engine, [docs, more], settings) as rs:
        assert rs.runs[0].files_done == 60
        for _ in range(n_ops):
            churn.step()
            if rng.random() < 0.08:  # let syncs run in the middle of the churn
                time.sleep(rng.uniform(0.2, 0.6))
            else:
                time.sleep(rng.uniform(0, 0.01))
        rs.wait_idle(timeout=120)
        context = f"seed {seed}; ops {sorted(Counter(churn.log).items())}"
        try:
            assert_index_matches_disk(engine, [docs, more])
        except AssertionError as exc:
            files = tree_files(docs) + tree_files(more)
            raise AssertionError(f"{exc}\n{context}\nfiles: {files}") from None
        folders = engine.status()["folders"]
        assert [f["path"] for f in folders] == [str(docs), str(more)]
        for folder in folders:
            assert folder["pending"] == 0 and folder["problems"] == [], (context, folder)
            assert folder["watcher_live"] is True
        assert sum(f["files_indexed"] for f in folders) == len(churn.files()), context
        assert sum(r.files_reused for r in rs.runs[1:]) > 0, context
