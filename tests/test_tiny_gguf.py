"""The tiny GGUF fixtures load in the real llama.cpp (via llama-cpp-python) and behave like a
last-token-pooled decoder embedding model; the bad-model fixtures are rejected.

No mocks: everything runs the real library on files written by tests/fixtures/tiny_gguf.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.tiny_gguf import (
    BOS_ID,
    EOS_ID,
    UNK_ID,
    tiny_vocab,
    write_adapter,
    write_not_gguf,
    write_tiny_llama,
    write_tiny_llama_with_pooling,
    write_truncated,
    write_unknown_arch,
    write_vocab_only,
)

llama_cpp = pytest.importorskip("llama_cpp")

N_EMBD = 64

TEXTS = [
    "hello world",
    "Instruct: Given a web search query, retrieve relevant passages\nQuery: budget 2024",
    "Crème brûlée à la française, naïve café",
    "emoji 🙂🚀 and flags 🇫🇷",
    "日本語のテキスト 中文 한국어",
    "tabs\tand\nnewlines\r\n and   spaces",
    "Ελληνικά и русский текст",
    "a",
]


def _llama(path: Path, pooling: int, **kw) -> llama_cpp.Llama:
    params = dict(n_ctx=256, n_batch=256, n_ubatch=256, verbose=False)
    params.update(kw)
    return llama_cpp.Llama(str(path), embedding=True, pooling_type=pooling, **params)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-gguf")


@pytest.fixture(scope="module")
def tiny_model(tiny_dir: Path) -> Path:
    return write_tiny_llama(tiny_dir / "tiny.gguf")


@pytest.fixture(scope="module")
def last_llm(tiny_model: Path):
    llm = _llama(tiny_model, llama_cpp.LLAMA_POOLING_TYPE_LAST)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def none_llm(tiny_model: Path):
    llm = _llama(tiny_model, llama_cpp.LLAMA_POOLING_TYPE_NONE)
    yield llm
    llm.close()


# --------------------------------------------------------------------------- writer


def test_writer_is_deterministic_and_fast(tiny_dir: Path) -> None:
    import time

    t0 = time.perf_counter()
    a = write_tiny_llama(tiny_dir / "det-a.gguf", seed=3)
    elapsed = time.perf_counter() - t0
    b = write_tiny_llama(tiny_dir / "det-b.gguf", seed=3)
    c = write_tiny_llama(tiny_dir / "det-c.gguf", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert elapsed < 1.0


def test_metadata_and_tensors(tiny_model: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(str(tiny_model))

    def scalar(key: str):
        return reader.get_field(key).contents()

    assert scalar("general.architecture") == "llama"
    assert scalar("general.name") == "e5-mistral-7b-instruct-tiny-test"
    assert scalar("general.basename") == "e5-mistral-7b-instruct-tiny-test"
    assert scalar("tokenizer.ggml.model") == "llama"
    assert reader.get_field("tokenizer.ggml.add_eos_token") is None
    assert scalar("llama.embedding_length") == N_EMBD
    tokens, _, types = tiny_vocab()
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens[3] == "<0x00>" and tokens[258] == "<0xFF>"
    assert set(types[3:259]) == {6}
    assert 300 <= len(tokens) - 259 <= 1000
    names = {t.name for t in reader.tensors}
    for i in range(2):
        for part in (
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ):
            assert f"blk.{i}.{part}.weight" in names
    assert {"token_embd.weight", "output_norm.weight", "output.weight"} <= names


# --------------------------------------------------------------------------- llama.cpp


def test_loads_in_llama_cpp(last_llm) -> None:
    assert last_llm.n_embd() == N_EMBD
    assert last_llm.n_vocab() == len(tiny_vocab()[0])
    assert last_llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_LAST
    assert last_llm.metadata["general.architecture"] == "llama"
    assert last_llm.metadata["general.name"] == "e5-mistral-7b-instruct-tiny-test"
    assert last_llm.token_bos() == BOS_ID
    assert last_llm.token_eos() == EOS_ID


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizes_arbitrary_utf8_without_unk(last_llm, text: str) -> None:
    toks = last_llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    assert toks[0] == BOS_ID
    assert UNK_ID not in toks
    assert EOS_ID not in toks
    # byte fallback makes tokenization lossless (the SPM leading space is stripped)
    assert last_llm.detokenize(toks).decode("utf-8") == text


def test_common_words_are_single_pieces(last_llm) -> None:
    toks = last_llm.tokenize(b"Instruct: search the file", add_bos=False, special=False)
    pieces = [last_llm.detokenize([t]).decode() for t in toks]
    assert pieces == [" Instruct", ":", " search", " the", " file"]


def test_embed_returns_one_finite_vector(last_llm) -> None:
    vec = last_llm.embed("hello world")
    assert isinstance(vec, list) and len(vec) == N_EMBD
    arr = np.asarray(vec, dtype=np.float64)
    assert np.isfinite(arr).all()
    assert np.linalg.norm(arr) > 1e-3
    other = np.asarray(last_llm.embed("a completely different text"))
    assert not np.allclose(arr, other)


@pytest.mark.parametrize("text", TEXTS[:5])
def test_last_pooling_is_last_token_row(last_llm, none_llm, text: str) -> None:
    pooled = np.asarray(last_llm.embed(text), dtype=np.float32)
    per_token = np.asarray(none_llm.embed(text), dtype=np.float32)
    n_tok = len(last_llm.tokenize(text.encode("utf-8")))
    assert per_token.shape == (n_tok, N_EMBD)
    assert np.isfinite(per_token).all()
    np.testing.assert_allclose(pooled, per_token[-1], rtol=1e-5, atol=1e-5)


def test_embedder_batch_matches_single(tiny_model: Path) -> None:
    """What Semdex calls (desktop.models.embedder.Embedder, not Llama.embed): on the tiny
    decoder, the texts of every script embedded in one call give the vectors each gives alone."""
    from desktop.models.embedder import Embedder, EmbedderSettings

    with Embedder(tiny_model, EmbedderSettings(threads=1)) as emb:
        seqs = [emb.encode_document(t) for t in TEXTS]
        together = emb.embed_tokens(seqs)
        alone = np.concatenate([emb.embed_tokens([s]) for s in seqs])
    assert together.shape == (len(TEXTS), N_EMBD) and np.isfinite(together).all()
    # kernels chosen by batch size differ by up to ~1e-3 on some CPUs (AMX's); a wrong sequence
    # or position would differ by far more
    np.testing.assert_allclose(together, alone, rtol=0, atol=2e-3)
    assert (np.sum(together * alone, axis=1) > 0.9999).all()


def test_lowlevel_multi_sequence_decode_matches_single(last_llm) -> None:
    """Several pre-tokenized sequences in ONE llama_decode == each decoded alone."""
    token_lists = [last_llm.tokenize(t.encode("utf-8")) for t in TEXTS[:3]]
    assert len({len(t) for t in token_lists}) == 3

    def embed_token_lists(llm, lists):
        ctx = llm.ctx
        n_total = sum(len(t) for t in lists)
        assert len(lists) <= llama_cpp.llama_n_seq_max(ctx)
        assert n_total <= llama_cpp.llama_n_batch(ctx)
        batch = llama_cpp.llama_batch_init(n_total, 0, 1)
        try:
            i = 0
            for seq_id, toks in enumerate(lists):
                for pos, tok in enumerate(toks):
                    batch.token[i] = tok
                    batch.pos[i] = pos
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq_id
                    batch.logits[i] = True
                    i += 1
            batch.n_tokens = n_total
            mem = llama_cpp.llama_get_memory(ctx)
            if mem:
                llama_cpp.llama_memory_clear(mem, True)
            assert llama_cpp.llama_decode(ctx, batch) == 0
            return np.stack(
                [
                    np.ctypeslib.as_array(
                        llama_cpp.llama_get_embeddings_seq(ctx, s), shape=(N_EMBD,)
                    ).copy()
                    for s in range(len(lists))
                ]
            )
        finally:
            llama_cpp.llama_batch_free(batch)

    together = embed_token_lists(last_llm, token_lists)
    alone = np.concatenate([embed_token_lists(last_llm, [t]) for t in token_lists])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    high_level = np.asarray(last_llm.embed(TEXTS[:3]), dtype=np.float32)
    np.testing.assert_allclose(together, high_level, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("add_eos", [True, False, None])
def test_add_eos_token_metadata(tiny_dir: Path, add_eos: bool | None) -> None:
    path = write_tiny_llama(tiny_dir / f"eos-{add_eos}.gguf", add_eos_token=add_eos)
    llm = _llama(path, llama_cpp.LLAMA_POOLING_TYPE_LAST)
    try:
        for text in (b"hello world", "caf\u00e9 \U0001f642".encode(), b"a"):
            toks = llm.tokenize(text, add_bos=True, special=False)
            assert toks[0] == BOS_ID
            if add_eos:
                assert toks[-1] == EOS_ID
                assert toks.count(EOS_ID) == 1
            else:
                assert EOS_ID not in toks
        # a literal "</s>" in user text is not the EOS token when special=False
        toks = llm.tokenize(b"end </s> here", add_bos=True, special=False)
        assert toks.count(EOS_ID) == (1 if add_eos else 0)
        assert bool(llama_cpp.llama_vocab_get_add_eos(llm._model.vocab)) is bool(add_eos)
    finally:
        llm.close()


def test_pooling_type_metadata_is_used_when_not_specified(tiny_dir: Path) -> None:
    path = write_tiny_llama_with_pooling(tiny_dir / "pool-mean.gguf", 1)
    llm = llama_cpp.Llama(
        str(path), embedding=True, n_ctx=256, n_batch=256, n_ubatch=256, verbose=False
    )
    try:
        assert llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_MEAN
    finally:
        llm.close()
    llm = _llama(path, llama_cpp.LLAMA_POOLING_TYPE_LAST)
    try:
        assert llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_LAST
    finally:
        llm.close()
    plain = llama_cpp.Llama(
        str(write_tiny_llama(tiny_dir / "pool-none.gguf")),
        embedding=True,
        n_ctx=256,
        n_batch=256,
        n_ubatch=256,
        verbose=False,
    )
    try:
        # no metadata and no explicit pooling -> llama.cpp falls back to NONE (per token)
        assert plain.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE
    finally:
        plain.close()


def test_vocab_only_load_tokenizes(tiny_dir: Path, tiny_model: Path) -> None:
    for path in (tiny_model, write_vocab_only(tiny_dir / "vocab.gguf")):
        tok = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        try:
            text = "Query: caf\u00e9 \U0001f642 \u65e5\u672c"
            toks = tok.tokenize(text.encode(), add_bos=True, special=False)
            assert toks[0] == BOS_ID and UNK_ID not in toks
            assert tok.detokenize(toks).decode() == text
        finally:
            tok.close()


# --------------------------------------------------------------------------- bad models

_LOAD_ALL = textwrap.dedent(
    """
    import json, sys, llama_cpp
    out = {}
    for path in sys.argv[1:]:
        try:
            llama_cpp.Llama(path, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_LAST,
                            n_ctx=256, n_batch=256, n_ubatch=256, verbose=False)
            out[path] = "loaded"
        except Exception as e:
            out[path] = f"{type(e).__name__}: {e}"
        print(json.dumps(out), flush=True)
    """
)


def test_bad_models_raise_value_error_without_aborting(tiny_dir: Path, tiny_model: Path) -> None:
    bad = [
        write_not_gguf(tiny_dir / "not.gguf"),
        write_truncated(tiny_model, tiny_dir / "trunc-header.gguf", keep_fraction=0.01),
        write_truncated(tiny_model, tiny_dir / "trunc-half.gguf"),
        write_vocab_only(tiny_dir / "vocab-only.gguf"),
        write_adapter(tiny_dir / "lora.gguf"),
        write_unknown_arch(tiny_dir / "arch.gguf"),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_ALL, *map(str, bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"process died ({proc.returncode}):\n{proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(bad)
    for path in bad:
        assert results[str(path)] == f"ValueError: Failed to load model from file: {path}"


def test_bad_model_files_are_well_formed_where_intended(tiny_dir: Path) -> None:
    import gguf

    lora = gguf.GGUFReader(str(write_adapter(tiny_dir / "lora2.gguf")))
    assert lora.get_field("general.type").contents() == "adapter"
    assert lora.get_field("adapter.type").contents() == "lora"
    assert any(t.name.endswith(".lora_a") for t in lora.tensors)
    arch = gguf.GGUFReader(str(write_unknown_arch(tiny_dir / "arch2.gguf")))
    assert arch.get_field("general.architecture").contents() == "made-up-arch"
    vocab = gguf.GGUFReader(str(write_vocab_only(tiny_dir / "vocab2.gguf")))
    assert len(vocab.tensors) == 0
    assert vocab.get_field("tokenizer.ggml.model").contents() == "llama"
