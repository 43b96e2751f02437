"""desktop.models.gguf_info on real files: the starter model, the tiny LLaMA fixture, broken
copies of them and crafted or random garbage. Whatever the bytes, the parser answers with a
ModelInfo or a ModelFileError naming the file, never with any other exception."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from desktop.models.gguf_info import ModelFileError, ModelInfo, read_model_info
from desktop.models.profiles import NotAnEmbedder, detect_profile
from tests.fixtures.tiny_gguf import (
    EOS_ID,
    write_not_gguf,
    write_tiny_llama,
    write_truncated,
)

# Every public property of ModelInfo: reading them must never raise, whatever the metadata.
PROPERTIES = [
    "arch", "name", "basename", "general_type", "quantization", "context_length",
    "embedding_length", "block_count", "pooling_type", "causal", "tokenizer_model",
    "vocab_size", "eos_token_id", "add_eos_token", "license", "parameter_count", "size_label",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("gguf-info") / "tiny-e5.gguf")


def _touch_everything(info: ModelInfo) -> None:
    for prop in PROPERTIES:
        getattr(info, prop)
    try:
        detect_profile(info)
    except NotAnEmbedder:
        pass


# --------------------------------------------------------------------------- good files


def test_starter_model_metadata(starter_model: Path) -> None:
    info = read_model_info(starter_model)
    assert info.arch == "bert"
    assert info.embedding_length == 384
    assert info.context_length == 512
    assert info.pooling_type == 1  # mean
    assert info.quantization == "F16"
    assert info.block_count == 6
    assert info.causal is False
    assert info.tokenizer_model == "bert"
    assert info.vocab_size == 30522
    assert info.eos_token_id == 102
    assert info.name == "all-MiniLM-L6-v2"
    assert info.version == 3
    assert info.file_size == starter_model.stat().st_size
    # all-MiniLM-L6-v2 has 22.7M parameters; the converter drops the unused pooler (148k).
    assert abs(info.parameter_count - 22.7e6) / 22.7e6 < 0.01
    assert info.size_label == "23M"


def test_starter_model_matches_gguf_py_reader(starter_model: Path) -> None:
    """An independent parser (gguf-py, the format's reference) reads the same header."""
    from gguf import GGUFReader

    info = read_model_info(starter_model)
    reader = GGUFReader(str(starter_model))
    assert [t.name for t in info.tensors] == [t.name for t in reader.tensors]
    for ours, theirs in zip(info.tensors, reader.tensors, strict=True):
        assert list(ours.shape) == [int(d) for d in theirs.shape]
        assert ours.ggml_type == int(theirs.tensor_type)
    assert info.parameter_count == sum(int(t.n_elements) for t in reader.tensors)
    for key in ("bert.context_length", "bert.embedding_length", "general.file_type",
                "tokenizer.ggml.eos_token_id"):
        assert info.get(key) == reader.fields[key].contents()
    assert info.get("general.architecture") == reader.fields["general.architecture"].contents()


def test_tiny_llama_metadata(tmp_path: Path, tiny_model: Path) -> None:
    info = read_model_info(tiny_model)
    assert info.arch == "llama"
    assert info.name == "e5-mistral-7b-instruct-tiny-test"
    assert info.causal is True
    assert info.embedding_length == 64
    assert info.eos_token_id == EOS_ID
    assert info.add_eos_token is None
    assert info.quantization == "F32"
    with_eos = read_model_info(write_tiny_llama(tmp_path / "eos.gguf", add_eos_token=True))
    assert with_eos.add_eos_token is True


# --------------------------------------------------------------------------- bad files


def test_text_file_is_not_a_gguf(tmp_path: Path) -> None:
    path = write_not_gguf(tmp_path / "notes.gguf")
    with pytest.raises(ModelFileError, match="not a GGUF") as err:
        read_model_info(path)
    assert "notes.gguf" in str(err.value)
    assert err.value.path == str(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty.gguf: empty file, not a GGUF"):
        read_model_info(path)


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_in_tensor_data(tmp_path: Path, starter_model: Path, fraction: float) -> None:
    path = write_truncated(starter_model, tmp_path / "cut.gguf", fraction)
    with pytest.raises(ModelFileError, match="truncated") as err:
        read_model_info(path)
    assert "cut.gguf" in str(err.value)


@pytest.mark.parametrize("keep_bytes", [3, 4, 10, 23, 100, 5_000, 40_000])
def test_truncated_in_header(tmp_path: Path, starter_model: Path, keep_bytes: int) -> None:
    """Cut inside the magic, the counts, a key, the vocabulary array or the tensor table."""
    path = tmp_path / "cut-header.gguf"
    with open(starter_model, "rb") as f:
        path.write_bytes(f.read(keep_bytes))
    with pytest.raises(ModelFileError, match="truncated") as err:
        read_model_info(path)
    assert "cut-header.gguf" in str(err.value)


def test_truncated_tiny_model(tmp_path: Path, tiny_model: Path) -> None:
    for fraction in (0.001, 0.01, 0.5):
        path = write_truncated(tiny_model, tmp_path / f"tiny-{fraction}.gguf", fraction)
        with pytest.raises(ModelFileError, match="truncated"):
            read_model_info(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="nowhere.gguf: file not found"):
        read_model_info(tmp_path / "nowhere.gguf")


def test_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    with pytest.raises(ModelFileError, match="model.gguf: is a folder"):
        read_model_info(folder)


# --------------------------------------------------------------------------- crafted headers


def _s(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def _gguf(kvs: list[bytes], n_tensors: int = 0, tail: bytes = b"", version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(kvs)) + b"".join(kvs) + tail


U32, I32, F32, STR, ARR = 4, 5, 6, 8, 9
_ARCH = _kv("general.architecture", STR, _s("bert"))

BAD_HEADERS = {
    "old version": _gguf([], version=1),
    "absurd version": _gguf([], version=0xFFFFFFFF),
    "absurd counts": b"GGUF" + struct.pack("<IQQ", 3, 2**60, 2**60),
    "unknown value type": _gguf([_kv("x", 77, b"\0" * 8)]),
    "string past the end": _gguf([_kv("x", STR, struct.pack("<Q", 2**40))]),
    "array past the end": _gguf([_kv("x", ARR, struct.pack("<IQ", U32, 2**40))]),
    "arrays nested 5000 deep": _gguf(
        [_kv("x", ARR, struct.pack("<IQ", ARR, 1) * 5000 + struct.pack("<IQ", U32, 0))]),
    "alignment is an array": _gguf(
        [_kv("general.alignment", ARR, struct.pack("<IQII", U32, 2, 1, 2))]),
    "alignment is a string": _gguf([_kv("general.alignment", STR, _s("abc"))]),
    "negative alignment": _gguf([_kv("general.alignment", I32, struct.pack("<i", -7))]),
    "alignment not a power of two": _gguf(
        [_kv("general.alignment", U32, struct.pack("<I", 24))]),
    "tensor with 40 dims": _gguf([], n_tensors=1, tail=_s("t") + struct.pack("<I", 40)),
    "tensor past the end": _gguf(
        [_ARCH], n_tensors=1, tail=_s("t") + struct.pack("<IQIQ", 1, 1_000_000, 0, 0)),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_crafted_bad_headers(tmp_path: Path, case: str) -> None:
    path = tmp_path / "crafted.gguf"
    path.write_bytes(BAD_HEADERS[case])
    with pytest.raises(ModelFileError) as err:
        read_model_info(path)
    assert str(err.value).startswith("crafted.gguf: ")


def test_wrongly_typed_metadata_reads_as_missing(tmp_path: Path) -> None:
    """Values of the wrong type (an array where a number belongs, inf, nan) are not used."""
    path = tmp_path / "odd-types.gguf"
    path.write_bytes(_gguf([
        _kv("general.architecture", STR, _s("bert")),
        _kv("general.name", ARR, struct.pack("<IQ", U32, 100) + b"\0" * 400),
        _kv("general.file_type", ARR, struct.pack("<IQI", U32, 1, 1)),
        _kv("bert.context_length", F32, struct.pack("<f", float("inf"))),
        _kv("bert.embedding_length", F32, struct.pack("<f", float("nan"))),
        _kv("bert.pooling_type", STR, _s("mean")),
        _kv("tokenizer.ggml.model", ARR, struct.pack("<IQI", U32, 1, 7)),
    ]))
    info = read_model_info(path)
    _touch_everything(info)
    assert info.arch == "bert"
    assert info.name == "odd-types"  # falls back to the file name
    assert info.quantization is None
    assert info.context_length is None
    assert info.embedding_length is None
    assert info.pooling_type is None
    assert info.tokenizer_model is None


def test_random_garbage_only_raises_model_file_error(tmp_path: Path,
                                                     starter_model: Path) -> None:
    """Random bytes after the magic, random small headers, and the real header with random
    bytes changed: each gives a ModelInfo or a ModelFileError, nothing else."""
    rng = random.Random(1234)
    with open(starter_model, "rb") as f:
        header = f.read(60_000)
    path = tmp_path / "garbage.gguf"
    outcomes = {"info": 0, "error": 0}
    for i in range(240):
        kind = i % 3
        if kind == 0:
            data = b"GGUF" + rng.randbytes(rng.randint(0, 300))
        elif kind == 1:
            counts = struct.pack("<IQQ", rng.choice([2, 3]), rng.randint(0, 4), rng.randint(0, 4))
            data = b"GGUF" + counts + rng.randbytes(rng.randint(0, 300))
        else:
            mutated = bytearray(header)
            for _ in range(rng.randint(1, 6)):
                mutated[rng.randint(4, 3_000)] = rng.getrandbits(8)
            data = bytes(mutated)
        path.write_bytes(data)
        try:
            info = read_model_info(path)
        except ModelFileError as exc:
            assert str(exc).startswith("garbage.gguf: ")
            outcomes["error"] += 1
        else:
            _touch_everything(info)
            outcomes["info"] += 1
    assert outcomes["error"] > 100  # the garbage really was garbage
