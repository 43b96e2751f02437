"""Bad input arriving while `semdex watch` runs: reported by name with a reason, never fatal.

The same corpus as tests/test_bad_input.py, but each file appears in a watched folder while the
Syncer runs (real watchdog, real store, real model): corrupt, encrypted, empty, huge (a sparse
file that must be skipped without being read), unreadable, a pipe, a broken link, a name that
is not UTF-8, files that vanish at once, odd encodings and odd names. Status names every bad
file with its reason; the odd but good ones are indexed; the good files stay searchable.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.index.indexer import MAX_FILE_BYTES
from desktop.index.sync import SyncSettings
from tests.fixtures.consistency import RunningSyncer, assert_index_matches_disk
from tests.fixtures.documents import make_corrupt_pdf, make_encrypted_pdf, make_pdf

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FAST = SyncSettings(quiet=0.2, optimize_after_idle=3600.0)

ODD_NAMES = {
    "with space.txt": "albatross",
    "ünïcødé ñame.txt": "bandicoot",
    "emoji 🎉 party.txt": "capybara",
    'quote" double.txt': "dugong",
    "it's single.txt": "echidna",
    "-leading-dash.txt": "flamingo",
    "semi;colon %20 back\\slash.txt": "gibbon",
    "new\nline.txt": "hedgehog",
    "日本語のファイル.md": "ibex",
    "l" * 240 + ".txt": "jackal",  # near the 255-byte limit of a name
}


@pytest.fixture
def engine(tmp_path, starter_model):
    with Engine(tmp_path / "data") as e:
        yield e


def keyword(engine: Engine, word: str) -> list[str]:
    return sorted(Path(h.path).name for h in engine.search(word, mode="keyword", per_file=None))


def problems(engine: Engine) -> dict[str, tuple[str, str]]:
    (folder,) = engine.status()["folders"]
    return {Path(p["path"]).name: (p["status"], p["reason"]) for p in folder["problems"]}


def write_good(docs: Path) -> None:
    docs.mkdir()
    (docs / "good.txt").write_text("The orchard produced a record harvest of pears.\n")
    make_pdf(docs / "good.pdf", ["A guide to knitting woollen scarves.",
                                 "Chapter on lighthouse maintenance."])


def reads_update_atime(folder: Path) -> bool:
    """Whether this file system records a read in the access time (relatime does when the
    access time is older than the modification time)."""
    probe = folder / "atime-probe.bin"
    probe.write_bytes(b"x" * 10)
    st = probe.stat()
    os.utime(probe, ns=(st.st_mtime_ns - 10**10, st.st_mtime_ns))
    probe.read_bytes()
    changed = probe.stat().st_atime_ns != st.st_mtime_ns - 10**10
    probe.unlink()
    return changed


@pytest.mark.slow
def test_bad_files_arriving_while_watching_are_reported_and_good_ones_kept(engine, tmp_path):
    docs = tmp_path / "docs"
    write_good(docs)
    with RunningSyncer(engine, [docs], FAST) as rs:
        good_rows = engine.store.file_rows()
        assert keyword(engine, "pears") == ["good.txt"]
        since = rs.mark()
        t0 = time.monotonic()

        make_corrupt_pdf(docs / "corrupt.pdf")
        make_encrypted_pdf(docs / "locked.pdf", "Secret plans for the museum heist.")
        (docs / "empty.txt").write_bytes(b"")
        (docs / "binary.txt").write_bytes(bytes(range(256)) * 16)
        huge = docs / "huge.txt"
        with open(huge, "wb") as f:  # sparse: 300 MB that take no room
            f.truncate(300 * 2**20)
        st = huge.stat()
        old_atime = st.st_mtime_ns - 10**10
        os.utime(huge, ns=(old_atime, st.st_mtime_ns))
        os.mkfifo(docs / "fifo.txt")  # opening it would block forever
        os.symlink(docs / "nowhere.txt", docs / "dangling.txt")
        with open(os.fsencode(docs) + b"/caf\xe9-latin1.txt", "wb") as f:
            f.write(b"old archive note about marzipan")
        for i in range(5):  # files that vanish at once
            (docs / f"flash{i}.txt").write_text("here and gone: quicksilver")
            (docs / f"flash{i}.txt").unlink()
        (docs / "utf16.txt").write_text("Penguins huddle in the Antarctic winter. "
                                        "Été à Montréal: crème brûlée.\n", encoding="utf-16")
        (docs / "cp1252.txt").write_bytes("Café crème and a saxophone solo.\n".encode("cp1252"))
        (docs / "invalid-utf8.txt").write_bytes(
            b"The tuba player \xff\xfe\xc3 practised all night long.\n")
        for name, word in ODD_NAMES.items():
            (docs / name).write_text(f"The {word} file has an odd name.\n")

        rs.wait_for(lambda: len(engine.store.file_rows()) >= 2 + 5 + 3 + len(ODD_NAMES),
                    30, "the new files")
        rs.wait_idle(since=since)
        assert time.monotonic() - t0 < 30  # the huge file cost no reading

        expected = {
            "corrupt.pdf": ("failed", "corrupt"),
            "locked.pdf": ("failed", "password"),
            "empty.txt": ("skipped", "empty"),
            "binary.txt": ("skipped", "binary"),
            "huge.txt": ("skipped", "too large"),
            "fifo.txt": ("failed", "not a regular file"),
            "dangling.txt": ("failed", "broken link"),
            "caf\ufffd-latin1.txt": ("failed", "not valid UTF-8"),
        }
        found = problems(engine)
        assert set(found) == set(expected), found
        for name, (status, word) in expected.items():
            assert found[name][0] == status and word in found[name][1], (name, found[name])
        assert f"{MAX_FILE_BYTES // 2**20} MB" in found["huge.txt"][1]
        if reads_update_atime(tmp_path):
            assert huge.stat().st_atime_ns == old_atime, "the huge file was read"

        # The odd encodings and odd names are indexed, each under its own name.
        assert keyword(engine, "penguins") == ["utf16.txt"]
        assert keyword(engine, "brûlée") == ["utf16.txt"]
        assert keyword(engine, "saxophone") == ["cp1252.txt"]
        assert "Café crème" in engine.search("saxophone", mode="keyword")[0].text
        assert keyword(engine, "tuba") == ["invalid-utf8.txt"]
        for name, word in ODD_NAMES.items():
            assert keyword(engine, word) == [name], name
        assert keyword(engine, "quicksilver") == []
        assert not any(n.startswith("flash") for n in map(os.path.basename,
                                                          engine.store.file_rows()))
        assert keyword(engine, "heist") == [] and keyword(engine, "marzipan") == []
        # Nothing already indexed was lost.
        rows = engine.store.file_rows()
        for path, row in good_rows.items():
            assert (rows[path].hash, rows[path].n_chunks) == (row.hash, row.n_chunks)
        assert keyword(engine, "lighthouse") == ["good.pdf"]
        (folder,) = engine.status()["folders"]
        assert folder["pending"] == 0 and folder["watcher_live"] is True
        assert folder["files_indexed"] == 2 + 3 + len(ODD_NAMES)
        assert (folder["files_failed"], folder["files_skipped"]) == (5, 3)
        assert_index_matches_disk(engine, [docs])

        # Fixing a file clears its problem; a removed pipe or link is forgotten.
        since = rs.mark()
        make_pdf(docs / "corrupt.pdf", ["Repaired document about beekeeping."])
        (docs / "fifo.txt").unlink()
        (docs / "dangling.txt").unlink()
        os.unlink(os.fsencode(docs) + b"/caf\xe9-latin1.txt")
        rs.wait_for(lambda: keyword(engine, "beekeeping") == ["corrupt.pdf"], 30, "repair")
        rs.wait_idle(since=since)
        assert set(problems(engine)) == {"locked.pdf", "empty.txt", "binary.txt", "huge.txt"}
        assert_index_matches_disk(engine, [docs])


def test_folder_with_a_name_that_is_not_utf8_is_reported_not_fatal(engine, tmp_path):
    docs = tmp_path / "docs"
    write_good(docs)
    with RunningSyncer(engine, [docs], FAST) as rs:
        bad = os.fsencode(docs) + b"/d\xe9j\xe0-vu"
        os.mkdir(bad)
        for i in range(3):
            with open(bad + f"/note{i}.txt".encode(), "w") as f:
                f.write("A note about the narwhal.\n")
        (docs / "after.txt").write_text("Written after the odd folder: okapi.\n")
        rs.wait_for(lambda: keyword(engine, "okapi") == ["after.txt"], 30, "the good file")
        rs.wait_idle()
        assert set(problems(engine)) == {"d\ufffdj\ufffd-vu"}
        assert keyword(engine, "narwhal") == [] and keyword(engine, "pears") == ["good.txt"]
        assert_index_matches_disk(engine, [docs])


@pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 file anyway")
def test_unreadable_file_arriving_while_watching_is_reported(engine, tmp_path):
    docs = tmp_path / "docs"
    write_good(docs)
    with RunningSyncer(engine, [docs], FAST) as rs:
        secret = docs / "noperm.txt"
        secret.write_text("A file nobody may read about tangerines.\n")
        secret.chmod(0)
        try:
            rs.wait_for(lambda: "noperm.txt" in problems(engine), 30, "the report")
            rs.wait_idle()
            assert problems(engine) == {"noperm.txt": ("failed", "permission denied")}
            assert keyword(engine, "pears") == ["good.txt"]
            secret.chmod(0o644)  # fixed: a change of mode alone is enough to index it
            rs.wait_for(lambda: keyword(engine, "tangerines") == ["noperm.txt"], 30, "fix")
            rs.wait_idle()
            assert problems(engine) == {}
        finally:
            secret.chmod(0o644)
