"""Bad input never stops indexing and never costs what is already indexed.

Each bad file is reported by name with a reason (in the run's progress, which the CLI prints
on stderr, and in status), the run goes on, and the good files stay searchable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.models.gguf_info import ModelFileError
from tests.fixtures.documents import (
    make_corrupt_pdf,
    make_encrypted_pdf,
    make_owner_only_pdf,
    make_pdf,
)

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def engine(tmp_path, starter_model):
    with Engine(tmp_path / "data") as e:
        yield e


def index(engine: Engine, paths=None, timeout: float = 120.0) -> list:
    """Run indexing in a thread: a FIFO or anything else that blocks fails the test, not CI."""
    out: list = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            out.extend(engine.index(paths))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "indexing hung"
    assert not errors, errors
    assert out[-1].phase == "done"
    return out


def keyword(engine: Engine, word: str) -> list[str]:
    return [Path(h.path).name for h in engine.search(word, mode="keyword", per_file=None)]


def write_good(docs: Path) -> None:
    docs.mkdir(exist_ok=True)
    (docs / "good.txt").write_text("The orchard produced a record harvest of pears.\n")
    make_pdf(docs / "good.pdf", ["A guide to knitting woollen scarves.",
                                 "Chapter on lighthouse maintenance."])


def write_bad(docs: Path) -> dict[str, tuple[str, str]]:
    """Bad files; name -> (expected status, a word of the expected reason)."""
    make_corrupt_pdf(docs / "corrupt.pdf")
    make_encrypted_pdf(docs / "locked.pdf", "Secret plans for the museum heist.")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 16)
    make_pdf(docs / "scanned.pdf", [" "])  # a page with no text layer
    os.symlink(docs / "nowhere.txt", docs / "dangling.txt")
    os.mkfifo(docs / "fifo.txt")  # opening it for reading would block forever
    (docs / "noperm.txt").write_text("A file nobody may read about tangerines.\n")
    os.chmod(docs / "noperm.txt", 0)
    with open(os.fsencode(docs) + b"/caf\xe9-latin1.txt", "wb") as f:
        f.write(b"old archive note about marzipan")
    expected = {
        "corrupt.pdf": ("failed", "corrupt"),
        "locked.pdf": ("failed", "password"),
        "empty.txt": ("skipped", "empty"),
        "binary.txt": ("skipped", "binary"),
        "scanned.pdf": ("skipped", "no text"),
        "dangling.txt": ("failed", "broken link"),
        "fifo.txt": ("failed", "not a regular file"),
        "caf\ufffd-latin1.txt": ("failed", "not valid UTF-8"),
    }
    if not IS_ROOT:  # root reads a chmod 000 file anyway
        expected["noperm.txt"] = ("failed", "permission denied")
    return expected


def test_bad_files_are_reported_and_good_ones_kept(engine, tmp_path):
    docs = tmp_path / "docs"
    write_good(docs)
    index(engine, [docs])
    good_rows = engine.store.file_rows()
    assert keyword(engine, "pears") == ["good.txt"]

    expected = write_bad(docs)
    make_owner_only_pdf(docs / "owner.pdf", "Owner protected memo about volcano eruptions.")
    progress = index(engine)

    # Every problem was announced once, by path, with its reason.
    announced = {Path(p).name: r for p, r in (x.problem for x in progress if x.problem)}
    assert set(announced) == set(expected)
    for name, (_, word) in expected.items():
        assert word in announced[name], (name, announced[name])
    last = progress[-1]
    n_failed = sum(1 for s, _ in expected.values() if s == "failed")
    assert (last.files_failed, last.files_skipped) == (n_failed, 3)
    assert last.files_unchanged == 2  # the good files were not even read again

    # Status: per folder, the counts and every problem with its reason.
    (folder,) = engine.status()["folders"]
    problems = {Path(p["path"]).name: p for p in folder["problems"]}
    assert set(problems) == set(expected)
    for name, (status, word) in expected.items():
        assert problems[name]["status"] == status and word in problems[name]["reason"], name
    assert folder["files_failed"] == n_failed and folder["files_skipped"] == 3
    assert folder["files_indexed"] == 3 + IS_ROOT  # good.txt, good.pdf, owner.pdf (+noperm)
    assert folder["last_sync"] is not None
    # The brief counts the window shows while a run goes on agree with the full status
    # (failures that never got a file row, like a dangling link, are only in the status).
    counts = engine.folder_counts()[folder["path"]]
    assert counts["files_indexed"] == folder["files_indexed"]
    assert counts["passages"] == folder["passages"] > 0
    assert counts["files_skipped"] == folder["files_skipped"]
    assert 0 < counts["files_failed"] <= folder["files_failed"]

    # Nothing already indexed was lost; the owner-password-only PDF is indexed.
    assert keyword(engine, "pears") == ["good.txt"]
    assert keyword(engine, "lighthouse") == ["good.pdf"]
    assert engine.search("lighthouse", mode="keyword")[0].page == 2
    assert keyword(engine, "volcano") == ["owner.pdf"]
    assert keyword(engine, "heist") == [] and keyword(engine, "marzipan") == []
    rows = engine.store.file_rows()
    for path, row in good_rows.items():
        assert rows[path].hash == row.hash and rows[path].n_chunks == row.n_chunks

    # A second run reports the same problems, once each, and loses nothing.
    again = index(engine)
    assert {Path(x.problem[0]).name for x in again if x.problem} == set(expected) - {
        "empty.txt", "binary.txt", "scanned.pdf"}  # skipped files are unchanged: not re-read
    (folder,) = engine.status()["folders"]
    assert len(folder["problems"]) == len(expected)
    assert keyword(engine, "pears") == ["good.txt"]

    # Fixing a file clears its problem.
    make_pdf(docs / "corrupt.pdf", ["Repaired document about beekeeping."])
    (docs / "dangling.txt").unlink()
    index(engine)
    (folder,) = engine.status()["folders"]
    names = {Path(p["path"]).name for p in folder["problems"]}
    assert "corrupt.pdf" not in names and "dangling.txt" not in names
    assert keyword(engine, "beekeeping") == ["corrupt.pdf"]


def test_indexed_file_that_turns_corrupt_shows_no_stale_text(engine, tmp_path):
    docs = tmp_path / "docs"
    write_good(docs)
    index(engine, [docs])
    assert keyword(engine, "knitting") == ["good.pdf"]
    make_corrupt_pdf(docs / "good.pdf")
    last = index(engine)[-1]
    assert last.files_failed == 1
    assert keyword(engine, "knitting") == []  # its old text is no longer on disk
    assert keyword(engine, "pears") == ["good.txt"]
    (folder,) = engine.status()["folders"]
    assert [(Path(p["path"]).name, p["status"]) for p in folder["problems"]] == [
        ("good.pdf", "failed")]


def test_file_that_disappears_while_being_read(engine, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"f{i:02d}.txt").write_text(f"Note {i} mentions the word original{i}.\n")
    index(engine, [docs])
    assert keyword(engine, "original7") == ["f07.txt"]

    for i in range(30):  # every file changes, so every file is planned for reading
        (docs / f"f{i:02d}.txt").write_text(f"Note {i} now says revised{i} instead.\n")
    victims = [docs / "f07.txt", docs / "f29.txt"]
    progress = []
    for prog in engine.index():
        progress.append(prog)
        if prog.phase == "indexing" and all(v.exists() for v in victims):
            assert prog.files_total == 30 and prog.files_done == 0  # planned, not yet read
            for v in victims:
                v.unlink()
    assert progress[-1].phase == "done"
    problems = {Path(x.problem[0]).name: x.problem[1] for x in progress if x.problem}
    assert problems == {"f07.txt": "disappeared while being indexed",
                        "f29.txt": "disappeared while being indexed"}
    assert progress[-1].files_failed == 2

    # The vanished files' old passages are gone; the others carry their new text.
    assert keyword(engine, "original7") == [] and keyword(engine, "original29") == []
    assert keyword(engine, "revised8") == ["f08.txt"]
    assert keyword(engine, "original8") == []
    rows = engine.store.file_rows()
    assert len(rows) == 28 and str(docs / "f07.txt") not in rows
    (folder,) = engine.status()["folders"]
    assert {(Path(p["path"]).name, p["reason"]) for p in folder["problems"]} == {
        ("f07.txt", "disappeared while being indexed"),
        ("f29.txt", "disappeared while being indexed")}
    assert folder["files_indexed"] == 28

    # Next run: they are simply gone, and so is the problem.
    index(engine)
    assert engine.status()["folders"][0]["problems"] == []


@pytest.mark.skipif(IS_ROOT or not hasattr(os, "geteuid"), reason="root reads any folder")
def test_unreadable_folder_keeps_its_index(engine, tmp_path):
    docs = tmp_path / "docs"
    sub = docs / "private"
    sub.mkdir(parents=True)
    (sub / "diary.txt").write_text("Dear diary, today I planted sunflowers.\n")
    index(engine, [docs])
    assert keyword(engine, "sunflowers") == ["diary.txt"]
    sub.chmod(0)
    try:
        progress = index(engine)
        assert [x.problem[0] for x in progress if x.problem] == [str(sub)]
        assert keyword(engine, "sunflowers") == ["diary.txt"]
        (folder,) = engine.status()["folders"]
        assert "cannot be read" in folder["problems"][0]["reason"]
    finally:
        sub.chmod(0o755)


def test_bad_model_is_refused_before_anything_is_touched(tmp_path, model_cache):
    bad = tmp_path / "notamodel.gguf"
    bad.write_text("this is a text file, not a GGUF\n")
    with pytest.raises(ModelFileError, match="notamodel.gguf"):
        Engine(tmp_path / "data", model=bad)
    env = {**os.environ, "SEMDEX_MODEL_CACHE": str(model_cache)}
    for args in (["index", str(tmp_path)], ["search", "anything"], ["status", "--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "desktop.cli", "--data-dir", str(tmp_path / "data"),
             "--model", str(bad), *args], capture_output=True, text=True, env=env, cwd=ROOT,
            timeout=120)
        assert proc.returncode == 1, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "notamodel.gguf" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    state = tmp_path / "data" / "state.json"
    assert not state.exists() or json.loads(state.read_text())["model"]["path"] is None


@pytest.mark.parametrize("content", ["{not json", "[]", '{"folders": {"/x": {"no_path": 1}}}',
                                     '{"model": "oops"}', "\udcff"])
def test_damaged_state_file_is_set_aside(tmp_path, content):
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.json").write_text(content, encoding="utf-8", errors="surrogateescape")
    with Engine(data) as engine:
        assert engine.status()["folders"] == []
        assert engine.model.is_starter
    assert (data / "state.json.damaged").exists()


def test_state_file_from_a_newer_version_still_loads(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (data / "state.json").write_text(json.dumps({
        "model": {"path": None, "family": None, "added_later": True},
        "folders": {str(docs): {"path": str(docs), "last_sync": 1.0, "colour": "blue"}},
        "schema": 7}), encoding="utf-8")
    with Engine(data) as engine:
        (folder,) = engine.status()["folders"]
        assert folder["path"] == str(docs) and folder["last_sync"] == 1.0
    assert not (data / "state.json.damaged").exists()
