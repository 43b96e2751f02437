"""The store's indexes (desktop/index/indexes.py) on a real LanceDB: built by the writer once a
table is large enough (the thresholds are lowered here so that a few thousand passages count as
large), searched with recall against exact numpy ground truth, exact under narrow filters, new
rows found before they are folded in, and rebuilt when the table has grown."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.index import indexes
from desktop.index.store import FileRow, Store
from desktop.search.query import Filters
from desktop.search.rank import search_vector

DIMS = 64
PER_FILE = 20
KINDS = ("pdf", "text", "markdown", "code", "html")


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around cluster centres, as real embeddings cluster (not i.i.d. noise)."""
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, DIMS))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fill(store: Store, rng: np.random.Generator, centres: np.ndarray, files: range,
         folder: str | None = None) -> None:
    chunks, rows = [], []
    vectors = clustered(rng, len(files) * PER_FILE, centres)
    for n, i in enumerate(files):
        fid, kind = f"f{i:06}", KINDS[i % len(KINDS)]
        path = f"{folder or f'/lib/d{i % 10}'}/file{i}.txt"
        for j in range(PER_FILE):
            chunks.append({"id": f"{fid}:{j}", "file_id": fid, "hash": "h", "path": path,
                           "kind": kind, "ordinal": j, "page": None, "start": 0, "end": 1,
                           "line_start": 1, "line_end": 1, "n_tokens": 3,
                           "text": f"passage {j} of file {i}",
                           "vector": vectors[n * PER_FILE + j].tolist()})
        rows.append(FileRow(fid, path, folder or f"/lib/d{i % 10}", kind, 1, 1, "h", "ok", "",
                            PER_FILE, 3 * PER_FILE, "v", 0.0))
    store.write(chunks, rows)


@pytest.fixture
def small_thresholds(monkeypatch):
    monkeypatch.setattr(indexes, "VECTOR_INDEX_MIN_FLOATS", 2000 * DIMS)
    monkeypatch.setattr(indexes, "SCALAR_INDEX_MIN_ROWS", 1000)
    monkeypatch.setattr(indexes, "ROWS_PER_PARTITION", 256)
    monkeypatch.setattr(indexes, "EXACT_FILTERED_FLOATS", 500 * DIMS)


def exact_top(store: Store, q: np.ndarray, k: int, where: str | None = None) -> list[str]:
    tbl = store.chunks.search().where(where) if where else store.chunks.search()
    t = tbl.select(["id", "vector"]).limit(None).to_arrow()
    x = np.asarray(t.column("vector").to_pylist(), dtype=np.float32)
    order = np.argsort(-(x @ q))[:k]
    ids = t.column("id").to_pylist()
    return [ids[i] for i in order]


def test_small_tables_stay_exact_and_unindexed(tmp_path):
    rng = np.random.default_rng(1)
    store = Store(tmp_path / "db", "t", DIMS)
    fill(store, rng, rng.standard_normal((40, DIMS)), range(100))
    store.optimize()
    assert {i.name for i in store.chunks.list_indices()} == {"text_idx"}
    assert not (tmp_path / "db" / indexes.BUILDS_FILE).exists()


def test_large_tables_get_their_indexes_and_keep_recall(tmp_path, small_thresholds):
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((60, DIMS))
    store = Store(tmp_path / "db", "t", DIMS)
    fill(store, rng, centres, range(300))  # 6,000 passages
    store.optimize()
    chunk_idx = {i.name: i.index_type for i in store.chunks.list_indices()}
    assert chunk_idx == {"text_idx": "FTS", "vector_idx": "IvfRq", "id_idx": "BTree",
                         "file_id_idx": "BTree", "path_idx": "BTree", "kind_idx": "Bitmap"}
    assert store.chunks.index_stats("vector_idx").distance_type == "dot"
    # (the files table has 300 rows: under the lowered threshold of 1,000, no indexes)
    assert {i.name for i in store.files.list_indices()} == set()

    queries = clustered(rng, 30, centres)
    recall = []
    for q in queries:
        hits = store.vector_search(q, 10)
        truth = exact_top(store, q, 10)
        recall.append(len({h["id"] for h in hits} & set(truth)) / 10)
    assert np.mean(recall) >= 0.95, recall

    # a narrow filter is scanned exactly: every passage it keeps, in exact order
    q = queries[0]
    where = "file_id IN ('f000007', 'f000012')"
    hits = store.vector_search(q, 50, where, filtered_rows=store.count_chunks(where))
    assert [h["id"] for h in hits] == exact_top(store, q, 50, where)
    assert len(hits) == 2 * PER_FILE
    # and through the core's search, with the window's filters
    d3 = search_vector(store, q, "", mode="semantic", k=100, per_file=None,
                       filters=Filters(folder="/lib/d3"))
    assert len(d3) == 100 and all(h.path.startswith("/lib/d3/") for h in d3)
    pdf = search_vector(store, q, "", mode="semantic", k=10, per_file=None,
                        filters=Filters(kinds=("pdf",)))
    assert [h.kind for h in pdf] == ["pdf"] * 10


def test_a_filter_far_from_the_query_still_returns_every_hit_there_is(tmp_path,
                                                                      small_thresholds):
    """A folder on another topic than the query: none of its passages lie in the partitions
    nearest the query, and the filter keeps too many to be scanned exactly. The index is
    searched further, partition after partition, until the hits asked for are found; and a
    folder's siblings whose names share its prefix are not mistaken for it."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((60, DIMS))
    store = Store(tmp_path / "db", "t", DIMS)
    fill(store, rng, centres, range(300))  # 6,000 passages on 60 topics
    q = clustered(rng, 1, centres[:1])[0]
    far = -centres[:1]  # the opposite topic
    fill(store, rng, far, range(300, 340), folder="/lib/far")  # 800 passages: not "narrow"
    fill(store, rng, far, range(340, 345), folder="/lib/far2")  # a sibling sharing a prefix
    fill(store, rng, far, range(345, 350), folder="/lib/far/é ü")  # a subfolder, not ASCII
    store.optimize()
    assert indexes.has_vector_index(store.chunks)
    where = store.where_clause(folder="/lib/far")
    kept = store.count_chunks(where)
    assert kept == 900 and not indexes.exact_filter(kept, DIMS)
    hits = search_vector(store, q, "", mode="semantic", k=200, per_file=None,
                         filters=Filters(folder="/lib/far"))
    assert len(hits) == 200
    assert all(h.path.startswith("/lib/far/") for h in hits)
    assert {h.path.rsplit("/", 1)[0] for h in hits} == {"/lib/far", "/lib/far/é ü"}
    # the store's own answer: as many as asked, the first ten of them the exact ones (a share
    # of the partitions is searched, not all: the deeper hits may differ, where every passage
    # of the folder is about as far from the query as the next)
    rows = store.vector_search(q, 200, where, filtered_rows=kept)
    truth = exact_top(store, q, 200, "starts_with(path, '/lib/far/')")
    assert len(rows) == 200
    assert len({r["id"] for r in rows[:10]} & set(truth[:10])) >= 9
    # a folder and its sibling of the same prefix, counted apart
    assert store.count_chunks(store.where_clause(folder="/lib/far2")) == 5 * PER_FILE
    assert store.count_chunks(store.where_clause(folder="/lib/fa")) == 0


def test_new_rows_are_found_before_they_are_folded_in_and_growth_rebuilds(tmp_path,
                                                                         small_thresholds):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((60, DIMS))
    store = Store(tmp_path / "db", "t", DIMS)
    fill(store, rng, centres, range(150))  # 3,000 passages: indexed
    store.optimize()
    book = indexes.IndexBook(tmp_path / "db").read()
    assert book[store.chunks.name]["rows"] == 3000
    # a file written after the index was built: its passages are found at once, exactly
    fill(store, rng, centres, range(150, 151))
    fresh = store.chunks.search().where("file_id = 'f000150'").select(["vector"]).limit(1)
    v = np.asarray(fresh.to_arrow().column("vector").to_pylist()[0], dtype=np.float32)
    assert store.chunks.index_stats("vector_idx").num_unindexed_rows == PER_FILE
    assert store.vector_search(v, 1)[0]["file_id"] == "f000150"
    # optimize folds it in; grown two-fold since training, the index is trained again
    store.optimize()
    assert store.chunks.index_stats("vector_idx").num_unindexed_rows == 0
    assert indexes.IndexBook(tmp_path / "db").read()[store.chunks.name]["rows"] == 3000
    fill(store, rng, centres, range(151, 310))
    # the writer says what it is doing, step by step (the faces show it while finishing)
    steps = list(store.optimize_steps())
    assert steps == ["Updating the keyword index…",
                     "Rebuilding the vector index of 6,200 passages (search goes on "
                     "meanwhile)…", "Compacting the index…",
                     "Measuring the vector index's recall…"]
    entry = indexes.IndexBook(tmp_path / "db").read()[store.chunks.name]
    assert entry["rows"] == 6200 and entry["recall"] >= 0.95  # measured after the build
    assert list(store.optimize_steps()) == ["Updating the keyword index…",
                                            "Compacting the index…"]  # (probed within the hour)
    # a recall measured under the floor is a reason to train again
    store.index_book.note(store.chunks.name, recall=0.5)
    assert indexes.vector_index_due(store.chunks, DIMS, store.index_book) == "rebuilt"
    store.optimize()
    assert indexes.IndexBook(tmp_path / "db").read()[store.chunks.name]["recall"] >= 0.95
    # a lost book is not a reason to train again: the index's own count is taken
    (tmp_path / "db" / indexes.BUILDS_FILE).unlink()
    store.optimize()
    assert indexes.IndexBook(tmp_path / "db").read()[store.chunks.name]["rows"] == 6200


def test_the_policy_the_benchmark_chose():
    """4-bit IVF_RQ for every width (bench/ann_tune.py), partitions small enough that NPROBES
    of them are a small part of the table, and about REFINE_CANDIDATES passages re-ranked."""
    from lancedb.index import IvfRq

    wide, narrow = (indexes.vector_index_config(100_000, 4096),
                    indexes.vector_index_config(1_000_000, 384))
    assert isinstance(wide, IvfRq) and isinstance(narrow, IvfRq)
    assert (wide.num_bits, wide.distance_type) == (4, "dot")
    assert (indexes.partitions(100_000, 4096), indexes.partitions(1_000_000, 384)) == (97, 244)
    assert [indexes.refine_factor(n) for n in (10, 50, 120, 1000)] == [10, 2, 1, 1]
    # (an exact scan over the rows a filter keeps is cheaper than the index up to about 4M
    # floats: bench/scale.py)
    assert indexes.exact_filter(10_000, 384) and not indexes.exact_filter(11_000, 384)
    assert indexes.exact_filter(970, 4096) and not indexes.exact_filter(1_000, 4096)
    # a filtered search through the index: 40% of the partitions, at least NPROBES
    assert [indexes.filtered_nprobes(p, 384) for p in (10, 40, 97, 244)] == [10, 20, 39, 98]
    assert [indexes.filtered_nprobes(p, 4096) for p in (10, 40, 97)] == [10, 28, 68]
    assert not indexes.vector_index_wanted(40_000, 384)  # 15M floats: an exact scan
    assert indexes.vector_index_wanted(50_000, 384) and indexes.vector_index_wanted(4_000, 4096)


def test_every_store_of_the_process_shares_one_bounded_session(tmp_path):
    a = Store(tmp_path / "db", "a", DIMS)
    b = Store(tmp_path / "other", "b", DIMS)
    assert a.session is b.session
    rng = np.random.default_rng(4)
    fill(b, rng, rng.standard_normal((5, DIMS)), range(3))
    assert b.count_chunks() == 3 * PER_FILE and a.count_chunks() == 0


def test_keyword_search_under_a_filter_is_the_filtered_ranking(tmp_path, small_thresholds):
    """lance#4957 (open): the full-text index's top-k under a prefilter, for queries of several
    words and a small limit, was reported incomplete. Here the filtered top 10 must be the
    unfiltered ranking with the other folders' passages taken out (BM25's statistics are the
    whole index's either way), for one-, two- and three-word queries."""
    rng = np.random.default_rng(11)
    vocab = [f"w{i:03d}" for i in range(400)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    store = Store(tmp_path / "db", "t", DIMS)
    centres = rng.standard_normal((10, DIMS))
    chunks, rows = [], []
    vectors = clustered(rng, 300 * PER_FILE, centres)
    for i in range(300):
        folder = "/lib/in" if i % 8 == 0 else f"/lib/out{i % 8}"
        fid, path = f"f{i:06}", f"{folder}/file{i}.txt"
        for j in range(PER_FILE):
            words = rng.choice(vocab, size=int(rng.integers(20, 60)), p=weights)
            chunks.append({"id": f"{fid}:{j}", "file_id": fid, "hash": "h", "path": path,
                           "kind": "text", "ordinal": j, "page": None, "start": 0, "end": 1,
                           "line_start": 1, "line_end": 1, "n_tokens": len(words),
                           "text": " ".join(words), "vector": vectors[i * PER_FILE + j].tolist()})
        rows.append(FileRow(fid, path, folder, "text", 1, 1, "h", "ok", "", PER_FILE,
                            PER_FILE * 40, "v", 0.0))
    store.write(chunks, rows)
    store.optimize()
    assert "text_idx" in {i.name for i in store.chunks.list_indices()}
    where = store.where_clause(folder="/lib/in")
    checked = 0
    for query in ("w120", "w050 w200", "w031 w077 w150", "w010 w333", "w005 w099 w250"):
        got = store.keyword_search(query, 10, where)
        every = [r for r in store.keyword_search(query, 6000)
                 if r["path"].startswith("/lib/in/")]
        assert len(got) == min(10, len(every)), query
        want = [round(r["score"], 4) for r in every[:10]]
        assert [round(r["score"], 4) for r in got] == want, query
        checked += len(got)
    assert checked >= 40
