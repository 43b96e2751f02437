"""Read a GGUF file's metadata without loading its weights, and refuse broken files early.

llama.cpp aborts the whole process on some malformed inputs, so every model file is read and
checked here first: magic, version, every key, every tensor's extent against the file size.
Large arrays (the vocabulary) are skipped, not materialised, so reading a 7B model's header
costs milliseconds.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from desktop.models.units import count_text

GGUF_MAGIC = b"GGUF"

# GGUF value types
_U8, _I8, _U16, _I16, _U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, _I64, _F64 = range(13)
_SCALAR = {
    _U8: "<B", _I8: "<b", _U16: "<H", _I16: "<h", _U32: "<I", _I32: "<i",
    _F32: "<f", _BOOL: "<?", _U64: "<Q", _I64: "<q", _F64: "<d",
}
_SMALL_ARRAY = 64  # arrays longer than this keep only their length
_MAX_ARRAY_DEPTH = 2  # arrays of arrays are legal but rare; deeper nesting is garbage
_ABSURD_LENGTH = 1 << 32  # longer strings/arrays are corruption, not a cut-off download

# general.file_type -> the name people know the quantisation by
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}

# Architectures whose attention is bidirectional: they embed with CLS/MEAN pooling.
ENCODER_ARCHS = frozenset({
    "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert",
    "neo-bert", "gemma-embedding", "t5encoder", "eurobert",
})

# A model split into parts, as llama.cpp's gguf-split names them: NAME-00001-of-00003.gguf
_SPLIT_NAME = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


class ModelFileError(Exception):
    """A model file that cannot be used; the message names the file and says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int


@dataclass
class ModelInfo:
    """What the metadata says about a model: enough to pick a profile and estimate memory."""

    path: Path
    file_size: int
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def arch_get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.arch}.{key}", default)

    def get_str(self, key: str) -> str | None:
        """A string value, or None when the key is missing, empty or not a string."""
        value = self.metadata.get(key)
        return value if isinstance(value, str) and value else None

    @property
    def arch(self) -> str:
        return self.get_str("general.architecture") or ""

    @property
    def name(self) -> str:
        return self.get_str("general.name") or self.path.stem

    @property
    def basename(self) -> str | None:
        return self.get_str("general.basename")

    @property
    def general_type(self) -> str | None:
        return self.get_str("general.type")

    @property
    def quantization(self) -> str | None:
        ft = as_int(self.metadata.get("general.file_type"))
        return FILE_TYPES.get(ft, f"type {ft}") if ft is not None else None

    @property
    def context_length(self) -> int | None:
        return as_int(self.arch_get("context_length"))

    @property
    def embedding_length(self) -> int | None:
        return as_int(self.arch_get("embedding_length"))

    @property
    def block_count(self) -> int | None:
        return as_int(self.arch_get("block_count"))

    @property
    def pooling_type(self) -> int | None:
        return as_int(self.arch_get("pooling_type"))

    @property
    def causal(self) -> bool:
        value = self.arch_get("attention.causal")
        if value is not None:
            return bool(value)
        return self.arch not in ENCODER_ARCHS

    @property
    def tokenizer_model(self) -> str | None:
        return self.get_str("tokenizer.ggml.model")

    @property
    def vocab_size(self) -> int | None:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, _ArrayLen):
            return tokens.length
        if isinstance(tokens, list):
            return len(tokens)
        return None

    @property
    def eos_token_id(self) -> int | None:
        return as_int(self.metadata.get("tokenizer.ggml.eos_token_id"))

    @property
    def add_eos_token(self) -> bool | None:
        value = self.metadata.get("tokenizer.ggml.add_eos_token")
        return None if value is None else bool(value)

    @property
    def license(self) -> str | None:
        return self.get_str("general.license")

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors)

    @property
    def size_label(self) -> str:
        return self.get_str("general.size_label") or count_text(self.parameter_count)


@dataclass(frozen=True)
class _ArrayLen:
    """Stands in for a long array whose items were skipped."""

    item_type: int
    length: int


def as_int(value: Any) -> int | None:
    """A metadata value as a count, or None: a file may hold anything where a number belongs
    (a bool, a list, a string, nan), and none of that may reach llama.cpp or an estimate."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def split_position(path: Path) -> tuple[int, int] | None:
    """(part, of) when the file is named as a part of a split model, else None."""
    m = _SPLIT_NAME.search(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def split_part(path: Path, part: int, total: int) -> Path:
    """The file of part ``part`` of ``total`` of the split model that ``path`` is a part of
    (llama.cpp finds the other parts by these names, beside the first)."""
    return path.with_name(_SPLIT_NAME.sub(f"-{part:05d}-of-{total:05d}.gguf", path.name))


def other_parts(path: Path, total: int) -> tuple[int, list[str]]:
    """Parts 2..total of a split model beside ``path`` (part 1): their bytes together, and the
    names of those that are missing."""
    size, missing = 0, []
    for i in range(2, total + 1):
        part = split_part(path, i, total)
        try:
            size += part.stat().st_size
        except OSError:
            missing.append(part.name)
    return size, missing


class _Reader:
    def __init__(self, f: BinaryIO, size: int):
        self.f = f
        self.size = size

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise EOFError
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def _check_length(self, n: int, what: str) -> None:
        """A length that runs past the end: a cut-off file, or garbage when it is absurd."""
        if n > self.size - self.f.tell():
            if n > _ABSURD_LENGTH:
                raise ValueError(f"{what} length {n} past the end of the file")
            raise EOFError

    def string(self) -> str:
        n = self.unpack("<Q")
        self._check_length(n, "string")
        return self.read(n).decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        if self.f.tell() + n > self.size:
            raise EOFError
        self.f.seek(n, os.SEEK_CUR)

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == _STR:
            return self.string()
        if vtype == _ARR:
            if depth >= _MAX_ARRAY_DEPTH:
                raise ValueError("arrays nested too deeply")
            item_type = self.unpack("<I")
            length = self.unpack("<Q")
            self._check_length(length, "array")
            if length <= _SMALL_ARRAY:
                return [self.value(item_type, depth + 1) for _ in range(length)]
            if item_type in _SCALAR:
                self.skip(length * struct.calcsize(_SCALAR[item_type]))
            elif item_type == _STR:
                for _ in range(length):
                    self.skip(self.unpack("<Q"))
            else:
                for _ in range(length):
                    self.value(item_type, depth + 1)
            return _ArrayLen(item_type, length)
        raise ValueError(f"unknown metadata value type {vtype}")


def _tensor_nbytes(ggml_type: int, shape: tuple[int, ...]) -> int | None:
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ImportError, KeyError, ValueError):
        return None
    return math.prod(shape) // block * type_size


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Parse the header of a GGUF file; raise ModelFileError with a plain reason if it is bad."""
    p = Path(path)
    if p.is_dir():  # opening a folder fails differently on each platform
        raise ModelFileError(p, "is a folder, not a GGUF file")
    try:
        size = p.stat().st_size
        f = open(p, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ModelFileError(p, "file not found") from None
    except IsADirectoryError:
        raise ModelFileError(p, "is a folder, not a GGUF file") from None
    except PermissionError:
        raise ModelFileError(p, "permission denied") from None
    except OSError as exc:
        raise ModelFileError(p, f"cannot be read ({exc.strerror or exc})") from None
    with f:
        r = _Reader(f, size)
        try:
            magic = f.read(4)
            if not magic:
                raise ModelFileError(p, "empty file, not a GGUF model file")
            if len(magic) < 4 and GGUF_MAGIC.startswith(magic):
                raise EOFError
            if magic != GGUF_MAGIC:
                raise ModelFileError(p, "not a GGUF model file (wrong magic bytes)")
            version = r.unpack("<I")
            if version not in (2, 3):
                raise ModelFileError(p, f"unsupported GGUF version {version}")
            n_tensors = r.unpack("<Q")
            n_kv = r.unpack("<Q")
            if n_tensors > 1_000_000 or n_kv > 1_000_000:
                raise ModelFileError(p, "corrupt GGUF header")
            metadata: dict[str, Any] = {}
            for _ in range(n_kv):
                key = r.string()
                metadata[key] = r.value(r.unpack("<I"))
            tensors = []
            for _ in range(n_tensors):
                name = r.string()
                n_dims = r.unpack("<I")
                if n_dims > 8:
                    raise ModelFileError(p, f"corrupt tensor header ({name})")
                shape = tuple(r.unpack("<Q") for _ in range(n_dims))
                tensors.append(TensorInfo(name, shape, r.unpack("<I"), r.unpack("<Q")))
            alignment = metadata.get("general.alignment", 32)
            if (not isinstance(alignment, int) or isinstance(alignment, bool)
                    or alignment <= 0 or alignment & (alignment - 1)):
                raise ModelFileError(p, f"corrupt GGUF header (alignment {alignment!r})")
            data_start = -(-f.tell() // alignment) * alignment
        except EOFError:
            raise ModelFileError(p, "truncated GGUF file (the header ends early)") from None
        except (ValueError, UnicodeDecodeError, struct.error) as exc:
            raise ModelFileError(p, f"corrupt GGUF file ({exc})") from None
    info = ModelInfo(path=p, file_size=size, version=version, metadata=metadata, tensors=tensors)
    for t in tensors:
        nbytes = _tensor_nbytes(t.ggml_type, t.shape)
        if nbytes is not None and data_start + t.offset + nbytes > size:
            missing = data_start + t.offset + nbytes - size
            raise ModelFileError(
                p, f"truncated GGUF file: tensor {t.name} needs {missing:,} bytes past the end "
                "(an interrupted download?)"
            )
    return info
