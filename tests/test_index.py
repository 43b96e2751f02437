"""Indexing through the real pipeline: scan, read, extract, chunk, embed (the real starter GGUF),
write to LanceDB on disk; then incremental runs, replacement, removal and crash consistency.

No mocks: every test drives `Engine` (as the CLI and the GUI do) over real files in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from desktop.engine import Engine
from desktop.extract import extract
from desktop.index.indexer import Progress
from desktop.index.store import chunk_schema
from desktop.models.embedder import EmbedderSettings
from tests.fixtures.documents import make_docx, make_pdf

NOTES = """\
Shopping list for the weekend.
Buy apples, flour and fresh yeast for the bread.
Remember the olive oil and the good salt.

The zebra at the city zoo escaped on Tuesday morning.
Keepers found it grazing in the botanical garden next to the roses.
Visitors took photographs while the animal ate the tulips.

Our quarterly tax return is due at the end of April.
The accountant asked for every invoice and the bank statements.
"""

PDF_PAGES = [
    "Chapter one. The lighthouse keeper climbed the spiral stairs every evening to light the "
    "great lamp that guided fishing boats home through the fog.",
    "Chapter two. A recipe for sourdough: feed the starter with rye flour, let the dough rise "
    "overnight, then bake it in a very hot cast iron pot.",
    "Chapter three. Volcanic eruptions throw ash high into the atmosphere and can cool the "
    "climate of the whole planet for a year or more.",
]


@pytest.fixture
def make_engine(tmp_path, starter_model):
    """Engines on the real starter model, each with a data dir under tmp_path."""
    engines: list[Engine] = []

    def make(data: str = "data", **kw) -> Engine:
        engine = Engine(tmp_path / data, **kw)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def run(engine: Engine, paths=None, **kw) -> list[Progress]:
    progress = list(engine.index(paths, **kw))
    assert progress[-1].phase == "done", progress[-1]
    return progress


def chunk_rows(engine: Engine) -> list[dict]:
    return engine.store.chunks.to_arrow().to_pylist()


def keyword_paths(engine: Engine, word: str) -> list[str]:
    return [h.path for h in engine.search(word, mode="keyword", k=20, per_file=None)]


def write_corpus(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    notes = folder / "notes.txt"
    notes.write_text(NOTES, encoding="utf-8")
    pdf = make_pdf(folder / "book.pdf", PDF_PAGES)
    return notes, pdf


def test_index_reads_chunks_embeds_and_stores_with_places(make_engine, tmp_path):
    notes, pdf = write_corpus(tmp_path / "docs")
    engine = make_engine(settings=EmbedderSettings(chunk_tokens=32))
    progress = run(engine, [tmp_path / "docs"])

    phases = [p.phase for p in progress]
    assert phases[0] == "scanning" and "indexing" in phases and phases[-1] == "done"
    last = progress[-1]
    assert (last.files_total, last.files_done, last.files_failed) == (2, 2, 0)
    assert last.problems == []

    rows = chunk_rows(engine)
    assert last.chunks == len(rows) == engine.store.count_chunks()
    assert len(rows) > 4  # 32-token passages: several per file
    files = engine.store.file_rows()
    assert {str(notes), str(pdf)} == set(files)
    assert sum(r.n_chunks for r in files.values()) == len(rows)
    assert all(len(r["vector"]) == 384 for r in rows)

    # PDF passages: 1-based pages; offsets into that page's extracted text.
    pages = {s.page: s.text for s in extract(pdf.name, pdf.read_bytes()).sections}
    pdf_rows = [r for r in rows if r["path"] == str(pdf)]
    assert {r["page"] for r in pdf_rows} == {1, 2, 3}
    for r in pdf_rows:
        assert pages[r["page"]][r["start"]:r["end"]] == r["text"]

    # Text passages: no page; offsets into the file's text; line ranges that match the file.
    text = notes.read_text(encoding="utf-8")
    lines = text.splitlines()
    txt_rows = sorted((r for r in rows if r["path"] == str(notes)), key=lambda r: r["ordinal"])
    assert [r["ordinal"] for r in txt_rows] == list(range(len(txt_rows)))
    for r in txt_rows:
        assert r["page"] is None
        assert text[r["start"]:r["end"]] == r["text"]
        assert r["line_start"] == text.count("\n", 0, r["start"]) + 1
        assert r["line_end"] == text.count("\n", 0, r["end"] - 1) + 1
        assert r["text"] in "\n".join(lines[r["line_start"] - 1:r["line_end"]])
    # the whole file is covered: from its first line to its last
    assert txt_rows[0]["line_start"] == 1 and txt_rows[-1]["line_end"] == len(lines)

    # A query by meaning finds the right page of the PDF and the right lines of the text.
    hit = engine.search("how to bake bread with a fermented starter", mode="semantic", k=1)[0]
    assert (hit.path, hit.page) == (str(pdf), 2)
    hit = engine.search("an escaped animal from the zoo", mode="semantic", k=1)[0]
    assert hit.path == str(notes) and hit.page is None
    assert "zebra" in hit.text and 4 <= hit.line_start <= 6


def test_second_run_costs_nothing_and_touch_does_not_re_embed(make_engine, tmp_path):
    notes, pdf = write_corpus(tmp_path / "docs")
    engine = make_engine()
    first = run(engine, [tmp_path / "docs"])[-1]
    count = engine.store.count_chunks()
    assert first.chunks == count > 0

    second = run(engine)[-1]  # no paths: every folder already added
    assert second.files_unchanged == 2
    assert (second.files_total, second.files_done, second.chunks, second.tokens) == (0, 0, 0, 0)
    assert engine.store.count_chunks() == count

    # Touch: new mtime, same bytes -> read and hashed again, but no embedding, no duplicates.
    before = engine.store.file_rows()[str(notes)]
    st = notes.stat()
    os.utime(notes, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    third = run(engine)[-1]
    assert (third.files_total, third.files_done, third.files_unchanged) == (1, 1, 1)
    assert (third.chunks, third.tokens) == (0, 0)
    assert engine.store.count_chunks() == count
    after = engine.store.file_rows()[str(notes)]
    assert after.hash == before.hash and after.n_chunks == before.n_chunks
    assert after.mtime_ns == st.st_mtime_ns + 5_000_000_000  # next run costs one stat again
    assert run(engine)[-1].files_unchanged == 2
    assert keyword_paths(engine, "zebra") == [str(notes)]


def test_changed_file_replaces_its_passages(make_engine, tmp_path):
    notes, pdf = write_corpus(tmp_path / "docs")
    engine = make_engine()
    run(engine, [tmp_path / "docs"])
    assert keyword_paths(engine, "zebra") == [str(notes)]
    pdf_passages = engine.store.file_rows()[str(pdf)].n_chunks

    notes.write_text(NOTES.replace("zebra", "giraffe"), encoding="utf-8")
    last = run(engine)[-1]
    assert last.files_done == 1 and last.chunks > 0 and last.files_unchanged == 1

    assert keyword_paths(engine, "zebra") == []
    assert keyword_paths(engine, "giraffe") == [str(notes)]
    hits = engine.search("zebra", mode="semantic", k=20, per_file=None)
    assert all("zebra" not in h.text for h in hits)
    rows = chunk_rows(engine)
    files = engine.store.file_rows()
    assert len(rows) == sum(r.n_chunks for r in files.values())
    assert {r["hash"] for r in rows if r["path"] == str(notes)} == {files[str(notes)].hash}
    assert files[str(pdf)].n_chunks == pdf_passages


def test_deleted_file_is_forgotten(make_engine, tmp_path):
    notes, pdf = write_corpus(tmp_path / "docs")
    engine = make_engine()
    run(engine, [tmp_path / "docs"])
    assert keyword_paths(engine, "lighthouse") == [str(pdf)]

    pdf.unlink()
    last = run(engine)[-1]
    assert last.files_removed == 1 and last.files_unchanged == 1
    assert keyword_paths(engine, "lighthouse") == []
    assert set(engine.store.file_rows()) == {str(notes)}
    assert {r["path"] for r in chunk_rows(engine)} == {str(notes)}
    assert all(h.path == str(notes) for h in engine.search("volcano ash", mode="semantic"))
    folder = engine.status()["folders"][0]
    assert (folder["files_indexed"], folder["passages"]) == (1, engine.store.count_chunks())


def test_new_passage_settings_replace_instead_of_duplicating(make_engine, tmp_path):
    write_corpus(tmp_path / "docs")
    small = make_engine(settings=EmbedderSettings(chunk_tokens=32))
    run(small, [tmp_path / "docs"])
    n_small = small.store.count_chunks()
    small.close()

    large = make_engine(settings=EmbedderSettings(chunk_tokens=128))
    last = run(large)[-1]
    assert last.files_done == 2 and last.files_unchanged == 0  # settings changed: re-cut
    rows = chunk_rows(large)
    assert len(rows) < n_small
    assert len(rows) == sum(r.n_chunks for r in large.store.file_rows().values())
    assert len({r["id"] for r in rows}) == len(rows)
    dupes = Counter((r["path"], r["start"], r["end"], r["page"]) for r in rows)
    assert max(dupes.values()) == 1


def test_models_and_data_dirs_never_share_tables(make_engine, tmp_path):
    from tests.fixtures.tiny_gguf import write_tiny_llama

    write_corpus(tmp_path / "docs")
    starter = make_engine("a")
    run(starter, [tmp_path / "docs"])
    n_starter = starter.store.count_chunks()

    tiny_path = write_tiny_llama(tmp_path / "tiny.gguf")
    tiny = make_engine("a", model=tiny_path)
    assert tiny.model.key != starter.model.key
    run(tiny, [tmp_path / "docs"])
    assert tiny.store.chunks.schema.field("vector").type.list_size == 64
    assert starter.store.chunks.schema.field("vector").type.list_size == 384
    assert tiny.store.count_chunks() > 0
    assert starter.store.count_chunks() == n_starter  # untouched by the other model's run
    names = set(starter.store._table_names())
    assert {f"chunks_{starter.model.key}", f"chunks_{tiny.model.key}",
            f"files_{starter.model.key}", f"files_{tiny.model.key}"} <= names
    assert tiny.search("lighthouse", mode="semantic", k=3)  # searches its own vectors
    assert tiny.status()["model"]["dims"] == 64 and starter.status()["model"]["dims"] == 384

    # Another data dir with the same model: the same key, but nothing of the first one's.
    other = make_engine("b")
    assert other.model.key == starter.model.key
    assert other.db_dir != starter.db_dir
    st = other.status()
    assert (st["passages"], st["files"], st["folders"]) == (0, 0, [])
    assert other.search("lighthouse", mode="hybrid") == []


def test_half_finished_write_is_never_shown_and_is_purged(make_engine, tmp_path):
    notes, pdf = write_corpus(tmp_path / "docs")
    engine = make_engine()
    run(engine, [tmp_path / "docs"])
    store = engine.store
    count = store.count_chunks()
    row = store.file_rows()[str(notes)]

    # A crash after the passages of a new version were added but before the file row moved
    # to that version (and passages of a file whose row was never written at all).
    text = "Orphanword: the spaceship landed quietly in the desert at midnight."
    vector = engine.embedder.embed_tokens([engine.embedder.encode_document(text)])[0]
    orphans = [
        {"id": f"{row.file_id}:new:0", "file_id": row.file_id, "hash": "f" * 32,
         "path": row.path, "kind": "text", "ordinal": 0, "page": None, "start": 0,
         "end": len(text), "line_start": 1, "line_end": 1, "n_tokens": 10, "text": text,
         "vector": vector},
        {"id": "nofile:x:0", "file_id": "0" * 20, "hash": "e" * 32,
         "path": str(tmp_path / "docs" / "never.txt"), "kind": "text", "ordinal": 0,
         "page": None, "start": 0, "end": len(text), "line_start": 1, "line_end": 1,
         "n_tokens": 10, "text": text, "vector": vector},
    ]
    store.write(pa.Table.from_pylist(orphans, schema=chunk_schema(store.dims)), [])
    assert store.count_chunks() == count + 2
    # The raw table does hold them (so the checks below are not vacuous)...
    raw = store.keyword_search("orphanword", 10)
    assert len([r for r in raw if "Orphanword" in r["text"]]) == 2
    raw = store.vector_search(vector, 2)
    assert all("Orphanword" in r["text"] for r in raw)
    # ...but no search mode ever returns them.
    for mode in ("semantic", "keyword", "hybrid"):
        hits = engine.search("spaceship landed in the desert orphanword", mode=mode, k=10,
                             per_file=None)
        assert all("Orphanword" not in h.text for h in hits), mode
    assert engine.search("zebra", mode="keyword")[0].path == str(notes)  # the real one stays
    assert engine.status()["folders"][0]["passages"] == count

    assert store.purge_orphans() == 2
    assert store.count_chunks() == count
    assert store.purge_orphans() == 0

    # An indexing run purges them too, before anything else.
    store.write(pa.Table.from_pylist(orphans, schema=chunk_schema(store.dims)), [])
    assert store.count_chunks() == count + 2
    run(engine)
    assert store.count_chunks() == count
    assert keyword_paths(engine, "zebra") == [str(notes)]


def test_every_format_is_searchable(make_engine, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_docx(docs / "minutes.docx", ["Board minutes.", "The committee approved the new "
                                      "harbour breakwater construction budget."])
    (docs / "garden.html").write_text(
        "<html><head><title>Garden</title><style>p {color: red}</style></head><body>"
        "<h1>Growing tomatoes</h1><p>Tomato seedlings want full sun and deep watering."
        "</p><script>var hidden = 'scriptonlyword';</script></body></html>", encoding="utf-8")
    (docs / "readme.md").write_text(
        "# Telescope\n\nThe refracting telescope needs its eyepiece cleaned before stargazing."
        "\n", encoding="utf-8")
    (docs / "fib.py").write_text(
        'def fibonacci_numbers(n):\n    """Return the first n Fibonacci numbers."""\n'
        "    a, b = 0, 1\n    out = []\n    for _ in range(n):\n        out.append(a)\n"
        "        a, b = b, a + b\n    return out\n", encoding="utf-8")
    (docs / "wide.txt").write_text(
        "Penguins huddle together through the Antarctic winter.\nÉté à Montréal: crème brûlée."
        "\n", encoding="utf-16")
    engine = make_engine()
    last = run(engine, [docs])[-1]
    assert last.problems == [] and last.files_done == 5

    expect = {
        "harbour breakwater": "minutes.docx",
        "tomato seedlings": "garden.html",
        "refracting telescope": "readme.md",
        "fibonacci_numbers": "fib.py",
        "Antarctic penguins": "wide.txt",
        "crème brûlée": "wide.txt",
    }
    for phrase, name in expect.items():
        hits = engine.search(phrase, mode="keyword", k=3)
        assert hits and Path(hits[0].path).name == name, (phrase, hits)
        hits = engine.search(phrase, mode="hybrid", k=1)
        assert Path(hits[0].path).name == name, phrase
    assert keyword_paths(engine, "scriptonlyword") == []  # scripts are not text
    wide = engine.search("penguins", mode="keyword", k=1)[0]
    assert (wide.line_start, wide.kind) == (1, "text")
    hit = engine.search("a function that computes a numeric sequence", mode="semantic", k=1)[0]
    assert Path(hit.path).name == "fib.py" and hit.kind == "code"


def test_folder_removed_from_the_library_is_forgotten_by_the_next_full_run(make_engine,
                                                                             tmp_path):
    # A folder removed while another model was in use leaves its rows in this model's table
    # (only the tables in use are cleaned at once); the next full run here forgets them, and
    # keeps the rest, the folders on a drive that is not plugged in included.
    notes, pdf = write_corpus(tmp_path / "kept")
    (tmp_path / "dropped").mkdir()
    (tmp_path / "dropped" / "old.txt").write_text("Minutes of the allotment society on kale.")
    (tmp_path / "drive").mkdir()
    (tmp_path / "drive" / "trip.txt").write_text("Packing list for the kayak trip.")
    engine = make_engine()
    run(engine, [tmp_path / "kept", tmp_path / "dropped", tmp_path / "drive"])
    assert keyword_paths(engine, "kale") == [str(tmp_path / "dropped" / "old.txt")]

    engine.state.folders.pop(str(tmp_path / "dropped"))
    engine.state.save(engine.data_dir)
    shutil.move(tmp_path / "drive", tmp_path / "unplugged")
    last = run(engine)[-1]
    assert last.files_removed == 1 and last.files_unchanged == 2
    assert keyword_paths(engine, "kale") == []
    assert keyword_paths(engine, "kayak") == [str(tmp_path / "drive" / "trip.txt")]
    assert set(engine.store.file_rows()) == {str(notes), str(pdf),
                                             str(tmp_path / "drive" / "trip.txt")}
    assert (tmp_path / "dropped" / "old.txt").exists()  # only the index forgets it

    # A folder another process added (its engine saved the state file) is not forgotten by
    # this engine, whose state was read before.
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "t.txt").write_text("Kohlrabi recipes from the other process.")
    other = make_engine()
    run(other, [tmp_path / "theirs"])
    run(engine, [tmp_path / "kept"])
    assert keyword_paths(engine, "kohlrabi") == [str(tmp_path / "theirs" / "t.txt")]

    # A run of one folder by name forgets them too; a watcher's scoped sync does not look.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("Kale soup for the allotment society.")
    run(engine, [tmp_path / "other"])
    with engine.writing():  # (as a removal killed between saving the state and the delete)
        engine.state.folders.pop(str(tmp_path / "other"))
        engine._save_state()
    run(engine, scope=[str(notes)])
    assert keyword_paths(engine, "kale") == [str(tmp_path / "other" / "x.txt")]
    run(engine, [tmp_path / "kept"])
    assert keyword_paths(engine, "kale") == []


def test_status_counts_as_pending_only_what_the_run_would_index(make_engine, tmp_path):
    notes, pdf = write_corpus(tmp_path / "docs")
    (tmp_path / "docs" / "debug.log").write_text("A log line about the zebra escape.")
    engine = make_engine()
    run(engine, [tmp_path / "docs"], excludes=["*.log"])
    (folder,) = engine.status()["folders"]
    assert folder["pending"] == 0 and folder["files_indexed"] == 2
    assert keyword_paths(engine, "zebra") == [str(notes)]
    # The patterns are the folder's last full run's: a new file is pending, a new log is not.
    (tmp_path / "docs" / "new.txt").write_text("Fresh note.")
    (tmp_path / "docs" / "more.log").write_text("Another log line.")
    (folder,) = engine.status()["folders"]
    assert folder["pending_files"] == [str(tmp_path / "docs" / "new.txt")]
    run(engine, [tmp_path / "docs"])  # without --exclude: the logs are indexed now
    (folder,) = engine.status()["folders"]
    assert folder["pending"] == 0 and folder["files_indexed"] == 5


def test_missing_known_folder_is_reported_and_keeps_its_index(make_engine, tmp_path):
    write_corpus(tmp_path / "one")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "drive.txt").write_text("Notes on the removable drive about kayaks.")
    engine = make_engine()
    run(engine, [tmp_path / "one", tmp_path / "two"])
    count = engine.store.count_chunks()

    shutil.move(tmp_path / "two", tmp_path / "unplugged")
    progress = run(engine)  # every known folder: one is gone, the run goes on
    problems = [p.problem for p in progress if p.problem]
    assert problems == [(str(tmp_path / "two"), "folder not found (its index is kept)")]
    assert progress[-1].files_unchanged == 2
    assert progress[-1].problems == problems  # in the run's summary too
    assert engine.store.count_chunks() == count
    folders = {f["path"]: f for f in engine.status()["folders"]}
    assert folders[str(tmp_path / "two")]["exists"] is False
    assert folders[str(tmp_path / "one")]["exists"] is True

    with pytest.raises(NotADirectoryError):  # a folder named explicitly must exist
        list(engine.index([tmp_path / "two"]))
    state = json.loads((engine.data_dir / "state.json").read_text("utf-8"))
    assert set(state["folders"]) == {str(tmp_path / "one"), str(tmp_path / "two")}


@pytest.mark.slow
def test_huge_writes_and_purges_do_not_crash_the_process(tmp_path):
    """Tens of thousands of files in one write (a touched tree) or one purge (a crash while
    forgetting a big folder): a single delete filter that long kills the process."""
    from desktop.index.store import FileRow, Store, file_id_for

    n = 40_000
    store = Store(tmp_path / "db", "huge", 4)
    ids = [file_id_for(f"/big/{i}.txt") for i in range(n)]
    store.write([], [FileRow(fid, f"/big/{i}.txt", "/big", "text", 1, 1, "h", "skipped",
                             "empty file", 0, 0, "sig", 0.0) for i, fid in enumerate(ids)])
    assert store.files.count_rows() == n
    orphans = pa.table({
        "id": [f"{fid}:h:0" for fid in ids], "file_id": ids, "hash": ["h"] * n,
        "path": [f"/big/{i}.txt" for i in range(n)], "kind": ["text"] * n,
        "ordinal": pa.array([0] * n, pa.int32()), "page": pa.nulls(n, pa.int32()),
        "start": pa.array([0] * n, pa.int32()), "end": pa.array([1] * n, pa.int32()),
        "line_start": pa.array([1] * n, pa.int32()), "line_end": pa.array([1] * n, pa.int32()),
        "n_tokens": pa.array([1] * n, pa.int32()), "text": ["x"] * n,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array([0.5] * (4 * n), pa.float32()), 4),
    }, schema=chunk_schema(4))
    store.write(orphans, [])  # passages whose files are all "skipped": none is valid
    assert store.purge_orphans() == n
    assert store.count_chunks() == 0


def test_cancelled_run_keeps_whole_files_and_the_next_run_resumes(make_engine, tmp_path):
    import threading

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(20):
        (docs / f"n{i:02d}.txt").write_text(" ".join(
            f"Sentence {j} of note {i} mentions marker{i}x{j}." for j in range(12)))
    engine = make_engine(settings=EmbedderSettings(chunk_tokens=16))
    cancel = threading.Event()
    progress = []
    for prog in engine.index([docs], cancel=cancel):
        progress.append(prog)
        if prog.phase == "indexing" and prog.files_done > 0:
            cancel.set()
    assert progress[-1].phase == "cancelled"
    rows = engine.store.file_rows()
    assert 0 < len(rows) < 20
    assert engine.store.count_chunks() == sum(r.n_chunks for r in rows.values())
    assert engine.status()["folders"][0]["last_sync"] is None

    last = run(engine)[-1]
    assert last.files_unchanged == len(rows) and last.files_done == 20 - len(rows)
    assert engine.store.count_chunks() == sum(
        r.n_chunks for r in engine.store.file_rows().values())
    for i in (0, 19):
        assert keyword_paths(engine, f"marker{i}x11") == [str(docs / f"n{i:02d}.txt")]
