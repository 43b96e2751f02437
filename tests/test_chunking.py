"""desktop.index.chunking with the real starter tokenizer (and the tiny LLaMA one for the decoder's
EOS): every passage fits the model with its special tokens, points back at exactly the text it
holds, and together the passages cover the whole text."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from desktop.index.chunking import Chunk, ChunkSettings, chunk_text
from desktop.models.embedder import Embedder, EmbedderSettings
from tests.fixtures.tiny_gguf import EOS_ID, write_tiny_llama

_SENTENCES = [
    "The lighthouse keeper wrote in his log every evening.",
    "Storms came from the west in late autumn!",
    "Did the supply boat arrive on time?",
    "Fresh water was stored in two iron tanks below the lamp room.",
    "His daughter learned to read the barometer before she could write.",
    "In 1911 the lens was replaced with a larger Fresnel lens, made in Paris.",
]


def _prose(n_paragraphs: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(n_paragraphs):
        paragraphs.append(" ".join(rng.choice(_SENTENCES) for _ in range(rng.randint(2, 7))))
    return "\n\n".join(paragraphs) + "\n"


def _cjk(n: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n)) + "。日本語の文章です。"


TEXTS = {
    "prose": _prose(30),
    "code": (Path(__file__).resolve().parents[1] / "desktop" / "index" / "chunking.py").read_text(),
    "one long word": "".join(random.Random(5).choice("abcdefghijklmnopqrstuvwxyz")
                             for _ in range(5_000)),
    "cjk without spaces": _cjk(2_000),
    "unknown run then dots": "🙂" * 3_000 + "." * 100 + " end",
    "crlf and tabs": "col1\tcol2\r\nvalue one\tvalue two\r\n" * 60,
    "blank lines": "\n\n\n   \n" + "word " * 400 + "\n\n\n\t\n",
    "single char": "x",
}


@pytest.fixture(scope="module")
def starter(starter_model: Path):
    emb = Embedder(starter_model, EmbedderSettings(threads=1))
    yield emb
    emb.close()


def check_chunks(text: str, chunks: list[Chunk], tok: Embedder, max_tokens: int, *,
                 page: int | None = None, first_ordinal: int = 0) -> None:
    covered = bytearray(len(text))
    for n, chunk in enumerate(chunks):
        assert len(chunk.tokens) <= max_tokens
        assert chunk.text == text[chunk.start:chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.tokens == tok.encode_document(chunk.text)
        assert chunk.line_start == text.count("\n", 0, chunk.start) + 1
        assert chunk.line_end == text.count("\n", 0, chunk.end) + 1
        assert chunk.line_end - chunk.line_start == chunk.text.count("\n")
        assert chunk.page == page
        assert chunk.ordinal == first_ordinal + n
        covered[chunk.start:chunk.end] = b"\1" * (chunk.end - chunk.start)
        if n:
            assert chunk.start > chunks[n - 1].start  # in order, always moving on
            assert chunk.end > chunks[n - 1].end
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"{len(missing)} characters in no passage, first at {missing[0]}"


@pytest.mark.parametrize("name", list(TEXTS))
@pytest.mark.parametrize("max_tokens,overlap", [(64, 0), (256, 32)])
def test_chunks_fit_cover_and_point_back(starter: Embedder, name: str, max_tokens: int,
                                         overlap: int) -> None:
    text = TEXTS[name]
    chunks = list(chunk_text(text, starter, ChunkSettings(max_tokens, overlap), page=4,
                             first_ordinal=10))
    assert chunks
    check_chunks(text, chunks, starter, max_tokens, page=4, first_ordinal=10)
    if starter.count(text) > 2 * max_tokens:
        assert len(chunks) >= 2


def test_passages_are_well_filled(starter: Embedder) -> None:
    """Packing is greedy: prose passages come close to the limit, not one sentence each."""
    chunks = list(chunk_text(TEXTS["prose"], starter, ChunkSettings(128)))
    assert len(chunks) >= 5
    sizes = [len(c.tokens) for c in chunks[:-1]]
    assert min(sizes) >= 128 - 30  # a sentence here is under 30 tokens


@pytest.mark.parametrize("text", ["", " ", "   \n\t  \n", "\n" * 50, "\u3000\u00a0"])
def test_empty_and_whitespace_give_no_chunks(starter: Embedder, text: str) -> None:
    assert list(chunk_text(text, starter, ChunkSettings(64))) == []


def test_line_numbers(starter: Embedder) -> None:
    lines = [f"Line {i} says something about item {i}." for i in range(1, 201)]
    text = "\n".join(lines)
    chunks = list(chunk_text(text, starter, ChunkSettings(48)))
    check_chunks(text, chunks, starter, 48)
    assert chunks[0].line_start == 1
    assert chunks[-1].line_end == 200
    for chunk in chunks:
        assert chunk.text.startswith(f"Line {chunk.line_start} ")
        assert chunk.text.splitlines()[-1].startswith(f"Line {chunk.line_end} ")


def test_overlap_shares_text_between_neighbours(starter: Embedder) -> None:
    text = " ".join(f"Fact {i} is short." for i in range(300))
    plain = list(chunk_text(text, starter, ChunkSettings(64, 0)))
    overlapped = list(chunk_text(text, starter, ChunkSettings(64, 16)))
    check_chunks(text, plain, starter, 64)
    check_chunks(text, overlapped, starter, 64)
    for a, b in zip(plain, plain[1:], strict=False):
        assert b.start >= a.end  # no overlap asked, none given
    for a, b in zip(overlapped, overlapped[1:], strict=False):
        assert b.start < a.end  # the next passage repeats the end of this one
        shared = text[b.start:a.end]
        assert shared.strip() and a.text.endswith(shared.strip())
        assert starter.count(shared) <= 16
    assert len(overlapped) > len(plain)


def test_overlap_never_repeats_a_passage(starter: Embedder) -> None:
    """Short sentences then a long one: carrying the full overlap would leave no room for the
    long sentence, and the next passage would be a mere tail of this one."""
    short = "Cats nap. " * 3
    long = "The committee reviewed " + ", ".join(f"item {i}" for i in range(18)) + ". "
    text = (short + long) * 8
    budget_check = starter.count(long)
    assert 40 <= budget_check <= 62  # the long sentence alone nearly fills a 64-token passage
    chunks = list(chunk_text(text, starter, ChunkSettings(64, 31)))
    check_chunks(text, chunks, starter, 64)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert not (a.start <= b.start and b.end <= a.end), (a.text, b.text)


def test_page_and_ordinals_carry_through(starter: Embedder) -> None:
    pages = [_prose(3, seed=s) for s in range(3)]
    ordinal = 0
    seen: list[Chunk] = []
    for page_no, page_text in enumerate(pages, start=1):
        chunks = list(chunk_text(page_text, starter, ChunkSettings(64), page=page_no,
                                 first_ordinal=ordinal))
        check_chunks(page_text, chunks, starter, 64, page=page_no, first_ordinal=ordinal)
        ordinal += len(chunks)
        seen.extend(chunks)
    assert [c.ordinal for c in seen] == list(range(len(seen)))
    assert {c.page for c in seen} == {1, 2, 3}


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ChunkSettings(7)
    with pytest.raises(ValueError):
        ChunkSettings(64, 32)
    with pytest.raises(ValueError):
        ChunkSettings(64, -1)
    assert ChunkSettings(64, 31).overlap == 31


def test_decoder_passages_end_with_eos_and_fit(tmp_path: Path) -> None:
    """With the tiny LLaMA (e5-mistral family) the limit includes BOS and the appended EOS."""
    path = write_tiny_llama(tmp_path / "e5-mistral-tiny.gguf")
    with Embedder(path, EmbedderSettings(threads=1)) as tiny:
        assert tiny.encode_document("") == [1, EOS_ID]
        for name in ("prose", "code", "cjk without spaces", "one long word"):
            text = TEXTS[name]
            chunks = list(chunk_text(text, tiny, ChunkSettings(48, 8)))
            check_chunks(text, chunks, tiny, 48)
            assert all(c.tokens[-1] == EOS_ID and c.tokens.count(EOS_ID) == 1 for c in chunks)
