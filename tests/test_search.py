"""Search over a real index: semantic (the starter model's vectors), keyword (LanceDB full-text),
hybrid (reciprocal rank fusion), top-k, the per-file cap, batch queries, task instructions.

One small library is indexed once for the module; every test searches it read-only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from desktop.engine import Engine
from desktop.models.embedder import EmbedderSettings
from desktop.search import snippet
from tests.fixtures.documents import make_pdf

ASTRONOMY = [
    "The refracting telescope bends starlight through a large objective lens.",
    "Jupiter has dozens of moons; the four largest were found by Galileo with a telescope.",
    "A reflecting telescope gathers the light of distant galaxies with a curved mirror.",
    "Saturn's rings are made of ice and rock and shine brightly through a small telescope.",
    "Nebulae are clouds of gas where new stars are born, visible with a dark sky telescope.",
    "The Hubble space telescope orbits the Earth above the blurring atmosphere.",
    "Mars appears red because iron oxide dust covers the planet's surface and stars fade.",
    "Astronomers measure the distance to nearby stars with parallax through the telescope.",
    "Comets grow bright tails of dust and gas when they pass close to the Sun.",
    "The Andromeda galaxy is the nearest large spiral galaxy to our Milky Way.",
]


@pytest.fixture(scope="module")
def library(tmp_path_factory, starter_model):
    docs = tmp_path_factory.mktemp("library")
    (docs / "cats.txt").write_text(
        "Cats are small domestic felines.\nA cat purrs when content and loves to chase mice "
        "around the barn.\n", encoding="utf-8")
    (docs / "trains.txt").write_text(
        "The express train departs from platform nine at noon.\nRailway timetables change in "
        "winter.\nYour ticket code is QZX7734.\n", encoding="utf-8")
    (docs / "finance.md").write_text(
        "## Mortgage\n\nThe bank raised the mortgage interest rate by half a percent.\n",
        encoding="utf-8")
    (docs / "astronomy.txt").write_text("\n\n".join(ASTRONOMY) + "\n", encoding="utf-8")
    make_pdf(docs / "guide.pdf", [
        "First aid for burns: cool the burned skin under cold running water for twenty "
        "minutes and cover it loosely with cling film.",
        "Fixing a flat bicycle tyre: remove the wheel, find the puncture in the inner tube, "
        "and glue a patch over the hole.",
    ])
    data = tmp_path_factory.mktemp("library-data")
    engine = Engine(data, model=starter_model, settings=EmbedderSettings(chunk_tokens=32))
    progress = list(engine.index([docs]))
    assert progress[-1].phase == "done" and progress[-1].problems == []
    assert engine.store.count_chunks() >= 14  # the long file makes one passage per sentence
    yield engine, docs
    engine.close()


def names(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


def assert_ranked(hits, k: int) -> None:
    assert len(hits) <= k
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    scores = [h.score for h in hits]
    assert all(math.isfinite(s) for s in scores)
    assert scores == sorted(scores, reverse=True), scores


@pytest.mark.parametrize(("query", "name", "page"), [
    ("which pet purrs and hunts rodents", "cats.txt", None),
    ("when does my rail journey leave", "trains.txt", None),
    ("what to do after scalding my hand on the stove", "guide.pdf", 1),
    ("repairing a punctured bike wheel", "guide.pdf", 2),
    ("cost of my home loan went up", "finance.md", None),
])
def test_semantic_finds_meaning_without_shared_words(library, query, name, page):
    engine, _ = library
    hits = engine.search(query, mode="semantic", k=3)
    assert_ranked(hits, 3)
    assert (names(hits)[0], hits[0].page) == (name, page)
    assert -1.001 <= hits[-1].score <= hits[0].score <= 1.001  # cosine similarity
    assert hits[0].score > 0.3


def test_keyword_matches_words_exactly(library):
    engine, _ = library
    hits = engine.search("mortgage", mode="keyword", k=10)
    assert names(hits) == ["finance.md"]
    assert hits[0].score > 0 and "mortgage" in hits[0].text
    assert engine.search("xylophonist", mode="keyword") == []
    hits = engine.search("telescope", mode="keyword", k=10, per_file=None)
    assert_ranked(hits, 10)
    assert len(hits) >= 5 and all("telescope" in h.text.lower() for h in hits)


def test_hybrid_brings_exact_codes_and_meaning_together(library):
    engine, _ = library
    hits = engine.search("QZX7734", mode="hybrid", k=5)
    assert_ranked(hits, 5)
    assert names(hits)[0] == "trains.txt"
    # fused scores are reciprocal ranks: found by both lists beats found by one
    assert hits[0].score > 1 / 61 and all(h.score <= 2 / 61 + 1e-9 for h in hits)
    hits = engine.search("cat purrs", mode="hybrid", k=5)
    assert names(hits)[0] == "cats.txt"


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_top_k_and_rank_order(library, mode):
    engine, _ = library
    query = "telescope stars"
    for k in (1, 4):
        hits = engine.search(query, mode=mode, k=k, per_file=None)
        assert len(hits) == k
        assert_ranked(hits, k)
    assert engine.search(query, mode=mode, k=0) == []


def test_large_k_returns_every_passage_once(library):
    engine, _ = library
    total = engine.store.count_chunks()
    hits = engine.search("anything at all", mode="semantic", k=1000, per_file=None)
    assert len(hits) == total  # the candidate pool grows until it holds the whole index
    assert len({(h.path, h.page, h.start) for h in hits}) == total
    assert_ranked(hits, 1000)


def test_at_most_n_passages_per_file_unless_zero(library):
    engine, _ = library
    query = "telescopes, stars and planets"
    unlimited = engine.search(query, mode="semantic", k=8, per_file=None)
    assert names(unlimited).count("astronomy.txt") > 3  # one long file would fill the page
    for cap in (1, 2, 3):
        hits = engine.search(query, mode="semantic", k=8, per_file=cap)
        counts = {n: names(hits).count(n) for n in names(hits)}
        assert max(counts.values()) <= cap and counts["astronomy.txt"] == cap
        assert_ranked(hits, 8)
    one_each = engine.search(query, mode="hybrid", k=10, per_file=1)
    assert len(names(one_each)) == len(set(names(one_each))) == 5  # five files, one each


def test_search_many_equals_one_by_one(library):
    engine, _ = library
    queries = ["railway timetable", "interest rate", "galaxy", "first aid"]
    for mode in ("semantic", "keyword", "hybrid"):
        batch = list(engine.search_many(queries, mode=mode, k=3))
        assert len(batch) == len(queries)
        for q, hits in zip(queries, batch, strict=True):
            single = engine.search(q, mode=mode, k=3)
            assert [(h.path, h.start, h.page) for h in hits] == \
                [(h.path, h.start, h.page) for h in single]
            assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-3)


def test_unknown_mode_is_refused(library):
    engine, _ = library
    with pytest.raises(ValueError, match="unknown search mode"):
        engine.search("cats", mode="fuzzy")


def test_keyword_search_and_status_never_load_the_model(library, starter_model, tmp_path):
    engine, _ = library
    reader = Engine(engine.data_dir, model=starter_model)
    try:
        assert names(reader.search("mortgage", mode="keyword")) == ["finance.md"]
        assert reader.status()["passages"] == engine.store.count_chunks()
        assert reader._embedder is None
    finally:
        reader.close()
    empty = Engine(tmp_path / "empty", model=starter_model)
    try:
        for mode in ("semantic", "keyword", "hybrid"):
            assert empty.search("cats", mode=mode) == []
    finally:
        empty.close()


def test_snippet_shows_the_query_words(library):
    engine, _ = library
    text = " ".join(ASTRONOMY)
    snip = snippet(text, "comets tails", width=120)
    assert "Comets" in snip and len(snip) <= 120 + 4 and "\n" not in snip
    short = engine.search("mortgage", mode="keyword")[0]
    assert snippet(short.text, "mortgage") == " ".join(short.text.split())


def test_task_and_instruction_reach_the_query_vector(tmp_path):
    """An instruction-tuned model (the tiny LLaMA) embeds the query with the chosen task."""
    from tests.fixtures.tiny_gguf import write_tiny_llama

    docs = tmp_path / "docs"
    docs.mkdir()
    for i, word in enumerate(["budget plan", "meeting notes", "photo album", "email draft"]):
        (docs / f"{i}.txt").write_text(f"The {word} for the project.\n", encoding="utf-8")
    with Engine(tmp_path / "data", model=write_tiny_llama(tmp_path / "tiny.gguf")) as engine:
        assert list(engine.index([docs]))[-1].phase == "done"
        general = engine.search("project budget", mode="semantic", k=4)
        code = engine.search("project budget", mode="semantic", k=4, task="code")
        own = engine.search("project budget", mode="semantic", k=4,
                            instruction="Find the spending plan")
        assert len(general) == len(code) == len(own) == 4
        s_general = sorted(h.score for h in general)
        assert s_general != pytest.approx(sorted(h.score for h in code), abs=1e-6)
        assert s_general != pytest.approx(sorted(h.score for h in own), abs=1e-6)
        batch = next(engine.search_many(["project budget"], mode="semantic", k=4,
                                        instruction="Find the spending plan"))
        assert [h.score for h in batch] == pytest.approx([h.score for h in own], abs=1e-3)
