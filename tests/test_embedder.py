"""desktop.models.embedder with the real llama.cpp: the starter model (BERT, mean pooling) and the
tiny LLaMA GGUF standing in for E5-Mistral (last-token pooling, EOS, instructions).

References are computed independently: llama-cpp-python's own Llama.embed for the encoder, and
a separate Llama with pooling NONE (one vector per token) for the decoder's last-token pooling.
Bad model files are loaded in a child process, so that an abort inside llama.cpp shows up as a
failed test instead of killing pytest.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from desktop.models.embedder import Embedder, EmbedderSettings, model_key
from desktop.models.gguf_info import ModelFileError, ModelInfo, read_model_info
from desktop.models.profiles import POOL_LAST, TASKS, detect_profile
from tests.fixtures.tiny_gguf import (
    BOS_ID,
    EOS_ID,
    write_adapter,
    write_not_gguf,
    write_tiny_llama,
    write_truncated,
    write_unknown_arch,
    write_vocab_only,
)

llama_cpp = pytest.importorskip("llama_cpp")

REPO = Path(__file__).resolve().parents[1]
CLS, SEP = 101, 102

TEXTS = [
    "cat",
    "The quarterly budget meeting moved to Thursday afternoon.",
    "def add(a, b):\n    return a + b\n",
    "Crème brûlée à la française, naïve café 🙂",
    " ".join(["Photosynthesis converts light energy into chemical energy in plants."] * 12),
    "日本語のテキスト",
    "a b",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def starter(starter_model: Path):
    emb = Embedder(starter_model, EmbedderSettings(threads=1))
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedder")


@pytest.fixture(scope="module")
def tiny_path(tiny_dir: Path) -> Path:
    return write_tiny_llama(tiny_dir / "e5-mistral-tiny.gguf")


@pytest.fixture(scope="module")
def tiny(tiny_path: Path):
    emb = Embedder(tiny_path, EmbedderSettings(threads=1))
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def tiny_eos(tiny_dir: Path):
    """The same model, but the GGUF itself asks the tokenizer to add EOS."""
    path = write_tiny_llama(tiny_dir / "e5-mistral-tiny-eos.gguf", add_eos_token=True)
    emb = Embedder(path, EmbedderSettings(threads=1))
    yield emb
    emb.close()


# --------------------------------------------------------------------------- starter model


def test_starter_identity(starter: Embedder, starter_model: Path) -> None:
    assert starter.dims == 384
    assert starter.profile.family == "all-minilm"
    assert starter.chunk_tokens == starter.batch_tokens == 256
    key = starter.key
    assert "all_minilm" in key and "_384_" in key
    info = read_model_info(starter_model)
    assert key == model_key(info, detect_profile(info))  # known before loading
    with Embedder(starter_model) as again:
        assert again.key == key


def test_key_keeps_family_and_dims_for_long_names(starter_model: Path) -> None:
    info = read_model_info(starter_model)
    long = ModelInfo(info.path, info.file_size, info.version,
                     dict(info.metadata, **{"general.name": "all-MiniLM-L6-v2 " + "x" * 200}),
                     info.tensors)
    a = model_key(long, detect_profile(long, "all-minilm"))
    b = model_key(long, detect_profile(long, "encoder-cls"))
    assert a != b
    assert "all_minilm_384" in a and "encoder_cls_384" in b


def test_encode_document_is_cls_text_sep(starter: Embedder) -> None:
    tokens = starter.encode_document("Hello world, this is Semdex.")
    assert tokens[0] == CLS and tokens[-1] == SEP
    assert tokens.count(CLS) == 1 and tokens.count(SEP) == 1
    assert len(tokens) == starter.count("Hello world, this is Semdex.") + 2
    assert starter.encode_document("") == [CLS, SEP]
    assert starter.encode_query("Hello world, this is Semdex.") == tokens  # raw queries


def test_vectors_are_normalised_and_match_llama_cpp_embed(starter: Embedder,
                                                          starter_model: Path) -> None:
    vectors = starter.embed_tokens([starter.encode_document(t) for t in TEXTS])
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # llama-cpp-python's own embed() (its own tokenization, batching and pooling) agrees.
    ref = llama_cpp.Llama(str(starter_model), embedding=True, n_ctx=512, n_batch=512,
                          n_ubatch=512, n_threads=1, verbose=False)
    try:
        expected = np.array(ref.embed(TEXTS, normalize=True), dtype=np.float32)
    finally:
        ref.close()
    for got, want in zip(vectors, expected, strict=True):
        assert cosine(got, want) > 0.9999


def test_batched_equals_one_at_a_time(starter: Embedder) -> None:
    seqs = [starter.encode_document(t) for t in TEXTS + TEXTS[::-1]]
    assert len({len(s) for s in seqs}) >= 5  # a batch mixing lengths
    assert sum(len(s) for s in seqs) > starter.batch_tokens  # and spanning several decodes
    together = starter.embed_tokens(seqs)
    for seq, vec in zip(seqs, together, strict=True):
        alone = starter.embed_tokens([seq])[0]
        assert cosine(vec, alone) > 0.9999
    again = starter.embed_tokens(list(reversed(seqs)))[::-1]
    assert np.allclose(again, together, atol=1e-4)


def test_semantic_sanity(starter: Embedder) -> None:
    cat, feline, stocks = starter.embed_tokens(
        [starter.encode_document(t) for t in ("cat", "feline", "stock market")])
    assert cosine(cat, feline) > cosine(cat, stocks) + 0.2
    q = starter.embed_queries(["where do kittens sleep"])[0]
    docs = starter.embed_tokens([starter.encode_document(t) for t in (
        "Young cats nap in warm, quiet corners of the house.",
        "The central bank raised interest rates again this quarter.")])
    assert cosine(q, docs[0]) > cosine(q, docs[1])


def test_tokenizing_texts_of_many_lengths_makes_no_new_types(starter: Embedder) -> None:
    # A ctypes array type per buffer length piled up and set off full garbage collections
    # that held the GIL for 50-100 ms: the window froze while indexing.
    def types() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, type))

    starter.count("warm up")
    before = types()
    counts = [starter.count("word " * n + "x" * n) for n in range(1, 400)]
    assert counts == sorted(counts) and counts[0] >= 2
    assert types() - before < 5


def test_sequence_longer_than_the_batch_is_a_value_error(starter: Embedder) -> None:
    too_long = [CLS] + [1996] * starter.batch_tokens + [SEP]
    with pytest.raises(ValueError, match="does not fit a batch"):
        starter.embed_tokens([starter.encode_document("fine"), too_long])
    with pytest.raises(ValueError, match="does not fit a batch"):
        starter.embed_tokens([[]])
    # The embedder still works afterwards.
    assert starter.embed_tokens([starter.encode_document("still fine")]).shape == (1, 384)


def test_long_query_is_cut_to_the_batch_keeping_sep(starter: Embedder) -> None:
    tokens = starter.encode_query("word " * 1000)
    assert len(tokens) == starter.batch_tokens
    assert tokens[0] == CLS and tokens[-1] == SEP
    assert starter.embed_queries(["word " * 1000]).shape == (1, 384)


@pytest.mark.parametrize("chunk", [15, 257, 0x7FFF])
def test_chunk_tokens_out_of_range(starter_model: Path, chunk: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        Embedder(starter_model, EmbedderSettings(chunk_tokens=chunk))


def test_chunk_tokens_edges_are_accepted(starter_model: Path) -> None:
    with Embedder(starter_model, EmbedderSettings(chunk_tokens=16)) as small:
        assert small.pack_tokens == 16
        vec = small.embed_tokens([small.encode_document("a short passage")])
        assert vec.shape == (1, 384)
        # Queries are not bound by the passage length: a long question is embedded whole.
        question = "which of the documents explains how the boiler service is booked " * 3
        tokens = small.encode_query(question)
        assert len(tokens) > 16 and tokens[-1] == SEP
        assert small.embed_tokens([tokens]).shape == (1, 384)


# --------------------------------------------------------------------------- decoder path


@pytest.fixture(scope="module")
def per_token(tiny_path: Path):
    """A separate Llama on the tiny model with pooling NONE: one embedding row per token."""
    ref = llama_cpp.Llama(str(tiny_path), embedding=True,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE,
                          n_ctx=256, n_batch=256, n_ubatch=256, n_threads=1, verbose=False)

    def rows(tokens: list[int]) -> np.ndarray:
        batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
        try:
            for i, tok in enumerate(tokens):
                batch.token[i] = tok
                batch.pos[i] = i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = True
            batch.n_tokens = len(tokens)
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ref.ctx), True)
            assert llama_cpp.llama_decode(ref.ctx, batch) == 0
            ptr = llama_cpp.llama_get_embeddings(ref.ctx)
            return np.ctypeslib.as_array(ptr, shape=(len(tokens), ref.n_embd())).copy()
        finally:
            llama_cpp.llama_batch_free(batch)

    yield rows
    ref.close()


def test_decoder_family_and_settings(tiny: Embedder) -> None:
    assert tiny.profile.family == "e5-mistral"
    assert tiny.profile.pooling == POOL_LAST
    assert tiny.dims == 64
    assert tiny.chunk_tokens == 512  # the family's 512, within the file's 512 context
    assert "e5_mistral" in tiny.key and "_64_" in tiny.key


def test_last_token_pooling(tiny: Embedder, per_token) -> None:
    seqs = [tiny.encode_document(t) for t in TEXTS[:4]] + [tiny.encode_query("budget 2024")]
    vectors = tiny.embed_tokens(seqs)  # several sequences in one decode
    for seq, vec in zip(seqs, vectors, strict=True):
        rows = per_token(seq)
        assert rows.shape == (len(seq), 64)
        last = rows[-1]
        # (the batch's kernels differ from one token's by up to ~1e-3 on some CPUs, AMX's)
        assert np.allclose(vec, last / np.linalg.norm(last), atol=2e-3)
        assert float(vec @ (last / np.linalg.norm(last))) > 0.9999


@pytest.mark.parametrize("which", ["tiny", "tiny_eos"])
def test_eos_exactly_once(request: pytest.FixtureRequest, which: str) -> None:
    emb: Embedder = request.getfixturevalue(which)
    raw = emb._tokenize("the meeting notes", add_special=True)
    # The GGUF with add_eos_token=True really does make the tokenizer add EOS itself.
    assert (raw[-1] == EOS_ID) is (which == "tiny_eos")
    for text in ("the meeting notes", "", "a"):
        doc = emb.encode_document(text)
        assert doc[0] == BOS_ID and doc[-1] == EOS_ID
        assert doc.count(EOS_ID) == 1, doc
        query = emb.encode_query(text)
        assert query[-1] == EOS_ID and query.count(EOS_ID) == 1, query


def test_both_eos_variants_embed_alike(tiny: Embedder, tiny_eos: Embedder) -> None:
    """Whether the GGUF asks the tokenizer for EOS changes neither the tokens nor the vectors."""
    texts = TEXTS[:3]
    docs = [tiny.encode_document(text) for text in texts]
    assert docs == [tiny_eos.encode_document(text) for text in texts]
    pairs = [*zip(tiny.embed_tokens(docs),
                  tiny_eos.embed_tokens([tiny_eos.encode_document(text) for text in texts]),
                  strict=True),
             *zip(tiny.embed_queries(texts), tiny_eos.embed_queries(texts), strict=True)]
    for a, b in pairs:
        assert cosine(a, b) >= 0.999


def test_instruction_only_on_queries(tiny: Embedder) -> None:
    query = tiny.encode_query("budget 2024")
    prefix = f"Instruct: {TASKS['general']}\nQuery:"
    prefix_tokens = [BOS_ID] + tiny._tokenize(prefix, add_special=False)
    assert query[:len(prefix_tokens)] == prefix_tokens
    custom = tiny.encode_query("budget 2024", instruction="Find invoices")
    custom_prefix = [BOS_ID] + tiny._tokenize("Instruct: Find invoices\nQuery:",
                                              add_special=False)
    assert custom[:len(custom_prefix)] == custom_prefix
    doc = tiny.encode_document("budget 2024")
    assert doc == [BOS_ID] + tiny._tokenize("budget 2024", add_special=False) + [EOS_ID]
    instruct = tiny._tokenize("Instruct", add_special=False)
    assert not any(doc[i:i + len(instruct)] == instruct for i in range(len(doc)))


def test_literal_eos_text_in_a_document_is_text(tiny: Embedder) -> None:
    doc = tiny.encode_document("before </s> after </s>")
    assert doc.count(EOS_ID) == 1 and doc[-1] == EOS_ID
    assert len(doc) > 6  # "</s>" was spelled out as ordinary pieces
    query = tiny.encode_query("what is </s>")
    assert query.count(EOS_ID) == 1


def test_more_sequences_than_llama_cpp_takes_per_decode(tiny_dir: Path) -> None:
    """llama.cpp caps one decode at 256 sequences; short passages must not break that."""
    path = write_tiny_llama(tiny_dir / "e5-mistral-tiny-2k.gguf", n_ctx=2048)
    with Embedder(path, EmbedderSettings(chunk_tokens=1024, threads=1)) as emb:
        seqs = [emb.encode_document(w) for w in ("a", "the", "file", "note")] * 150
        assert max(len(s) for s in seqs) <= 3 and len(seqs) == 600
        vectors = emb.embed_tokens(seqs)
        alone = emb.embed_tokens(seqs[:4])
        for i in range(0, 600, 97):
            # (kernels chosen by batch size differ by up to ~1e-3 on some CPUs, AMX's)
            assert np.allclose(vectors[i], alone[i % 4], atol=2e-3)
            assert float(vectors[i] @ alone[i % 4]) > 0.9999


# --------------------------------------------------------------------------- bad files

_CHILD = """
import json, sys
from desktop.models.embedder import Embedder, EmbedderSettings
from desktop.models.gguf_info import ModelFileError
from desktop.models.profiles import NotAnEmbedder
try:
    Embedder(sys.argv[1], EmbedderSettings(family=sys.argv[2] or None, threads=1))
except (ModelFileError, NotAnEmbedder) as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"type": "loaded", "message": ""}))
"""


def _bad_file(kind: str, d: Path, starter_model: Path, tiny_path: Path) -> Path:
    if kind == "text":
        return write_not_gguf(d / "notes.gguf")
    if kind == "empty":
        (d / "empty.gguf").write_bytes(b"")
        return d / "empty.gguf"
    if kind == "cut-data":
        return write_truncated(starter_model, d / "cut-data.gguf", 0.5)
    if kind == "cut-header":
        with open(starter_model, "rb") as f:
            (d / "cut-header.gguf").write_bytes(f.read(5_000))
        return d / "cut-header.gguf"
    if kind == "cut-tiny":
        return write_truncated(tiny_path, d / "cut-tiny.gguf", 0.5)
    if kind == "vocab-only":
        return write_vocab_only(d / "vocab-only.gguf")
    if kind == "adapter":
        return write_adapter(d / "adapter.gguf")
    if kind.startswith("unknown-arch"):
        return write_unknown_arch(d / "unknown-arch.gguf")
    if kind == "chat":
        return write_tiny_llama(d / "chat.gguf", name="tiny-chat-model")
    if kind == "missing":
        return d / "missing.gguf"
    if kind == "folder":
        (d / "folder.gguf").mkdir()
        return d / "folder.gguf"
    raise AssertionError(kind)


BAD_CASES = {
    # kind: (family override, exception, words the message must hold)
    "text": ("", "ModelFileError", "not a GGUF"),
    "empty": ("", "ModelFileError", "empty file"),
    "cut-data": ("", "ModelFileError", "truncated"),
    "cut-header": ("", "ModelFileError", "truncated"),
    "cut-tiny": ("e5-mistral", "ModelFileError", "truncated"),
    "vocab-only": ("", "NotAnEmbedder", "no weights"),
    "adapter": ("", "NotAnEmbedder", "adapter"),
    "unknown-arch": ("", "NotAnEmbedder", "made-up-arch"),
    # Forced past the profile check, it reaches llama.cpp, whose own reason is reported.
    "unknown-arch-forced": ("decoder-last", "ModelFileError", "unknown model architecture"),
    "chat": ("", "NotAnEmbedder", "--family decoder-last"),
    "missing": ("", "ModelFileError", "not found"),
    "folder": ("", "ModelFileError", "folder"),
}


@pytest.mark.parametrize("kind", list(BAD_CASES))
def test_bad_model_file_in_a_child_process(kind: str, tmp_path: Path, starter_model: Path,
                                           tiny_path: Path) -> None:
    family, expected_type, words = BAD_CASES[kind]
    path = _bad_file(kind, tmp_path, starter_model, tiny_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), family], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-2000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["type"] == expected_type, result
    assert path.name in result["message"]
    assert words in result["message"]


def test_bad_file_error_in_process(tmp_path: Path) -> None:
    """The same errors in-process carry the path for the UI."""
    path = write_not_gguf(tmp_path / "renamed.gguf")
    with pytest.raises(ModelFileError) as err:
        Embedder(path)
    assert err.value.path == str(path)


def test_llama_log_reaches_python_logging(tmp_path: Path, tiny_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """llama.cpp's lines go to the "llama_cpp" logger at their real level (its errors were
    hidden and its warnings printed), and a failed load's reason ends up in the error."""
    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    with pytest.raises(ModelFileError, match="unknown model architecture: 'made-up-arch'"):
        Embedder(write_unknown_arch(tmp_path / "odd.gguf"),
                 EmbedderSettings(family="decoder-last", threads=1))
    errors = [r for r in caplog.records if r.name == "llama_cpp" and r.levelno == logging.ERROR]
    assert any("unknown model architecture" in r.getMessage() for r in errors)
    caplog.clear()
    with Embedder(tiny_path, EmbedderSettings(threads=1)) as emb:
        emb.embed_queries(["hello"])
    assert any(r.name == "llama_cpp" for r in caplog.records)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)
