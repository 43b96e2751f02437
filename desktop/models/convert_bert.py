"""Turn a Hugging Face BERT checkpoint into a GGUF file that llama.cpp can embed with.

Semdex ships its starter model as plain safetensors inside a pip package, because that is the
one channel every user already has and it needs no download at run time. llama.cpp only reads
GGUF, and llama.cpp's own converter needs torch and transformers, which would triple the size
of the install. This module does the same conversion with numpy, safetensors and gguf-py alone,
for the plain BERT encoders (all-MiniLM-L6-v2 and its relatives) that the starter model is.

The output follows llama.cpp's ``convert_hf_to_gguf.py`` (class ``BertModel``) so the file
behaves exactly like one made upstream: same tensor names, the "phantom space" WordPiece
vocabulary, the same special-token ids and flags, and the same choice of which tensors stay
F32 in an F16 file. The file is written under a temporary name and renamed into place, so an
interrupted conversion never leaves a truncated model where a reader would pick it up.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

logger = logging.getLogger(__name__)

#: Bump whenever the bytes this module writes change; cached conversions older than this are
#: redone (see ``desktop.models.starter``).
CONVERTER_VERSION = 1

FTYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "f32": gguf.LlamaFileType.ALL_F32}

PHANTOM_SPACE = "\u2581"

# WordPiece special tokens, the way BERT vocab.txt files spell them.
_CLS, _SEP, _PAD, _UNK, _MASK = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"
_UNUSED_RE = re.compile(r"^\[unused\d+\]$")

# Folder names that say nothing about which model is inside.
_GENERIC_DIR_NAMES = {"model", "models", "checkpoint", "weights", "hf", "0_transformer"}

_LAYER_PARTS = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_EMBEDDING_PARTS = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.LayerNorm": "token_embd_norm",
}
# Tensors an embedding model does not use: the NSP pooler, the MLM head, a buffer of 0..n-1.
_DROPPED_PREFIXES = ("pooler.", "cls.", "embeddings.position_ids")
# Matrices llama.cpp keeps in F32 even in an F16 file (it gathers rows from them, never matmuls).
_ALWAYS_F32 = {"position_embd.weight", "token_types.weight"}

_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


def convert_bert(
    model_dir: Path,
    out_path: Path,
    *,
    ftype: str = "f16",
    name: str | None = None,
    license: str | None = None,
) -> Path:
    """Write ``model_dir`` (config.json, vocab.txt, model.safetensors) as GGUF at ``out_path``.

    ``ftype`` is "f16" (matrices in half precision, norms and biases in F32) or "f32".
    ``name`` and ``license`` default to what the model card (README.md) says.
    Raises ValueError naming the offending file when an input is missing or is not a BERT model.
    Returns ``out_path``.
    """
    model_dir = Path(model_dir)
    out_path = Path(out_path)
    if ftype not in FTYPES:
        raise ValueError(f"ftype must be one of {sorted(FTYPES)}, not {ftype!r}")
    if not model_dir.is_dir():
        raise ValueError(f"model folder not found: {model_dir}")

    config_path = model_dir / "config.json"
    config = _read_config(config_path)
    tokens = _read_vocab(model_dir / "vocab.txt", config)
    weights_path = _require(model_dir / "model.safetensors")
    card = _read_model_card(model_dir / "README.md")
    pooling = _read_pooling(model_dir / "1_Pooling" / "config.json")

    model_name = name or card.get("title") or _name_from_dir(model_dir)
    license = license or card.get("license")

    try:
        weights = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"cannot read weights from {weights_path}: {exc}") from exc
    tensors = list(_map_tensors(weights, config, weights_path))

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(f".{out_path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    writer: gguf.GGUFWriter | None = None
    try:
        writer = gguf.GGUFWriter(tmp_path, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
        _add_metadata(writer, config, tokens, FTYPES[ftype], model_name, license, pooling)
        for tensor_name, data in tensors:
            writer.add_tensor(tensor_name, _cast(tensor_name, data, ftype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp_path, out_path)
    except BaseException:
        if writer is not None and writer.fout is not None:
            writer.close()  # Windows cannot delete a file that is still open
        tmp_path.unlink(missing_ok=True)
        raise
    logger.info(
        "converted %s to %s (%s, %.1f MB)",
        model_dir,
        out_path,
        ftype,
        out_path.stat().st_size / 1e6,
    )
    return out_path


def _require(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"missing model file: {path}")
    return path


def _read_config(path: Path) -> dict:
    _require(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    archs = config.get("architectures") or []
    if config.get("model_type") != "bert" and not any(a.startswith("Bert") for a in archs):
        raise ValueError(
            f"{path} describes a {config.get('model_type') or archs or 'unknown'} model, "
            "not BERT; only BERT encoders can be converted"
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{path}: only absolute position embeddings are supported")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{path}: only the gelu activation is supported")
    missing = [
        k
        for k in (
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "max_position_embeddings",
        )
        if k not in config
    ]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return config


def _read_vocab(path: Path, config: dict) -> list[str]:
    _require(path)
    with path.open(encoding="utf-8", newline="") as f:
        tokens = [line.rstrip("\r\n") for line in f]
    if tokens and tokens[-1] == "":
        tokens.pop()  # trailing newline at end of file
    n_vocab = config.get("vocab_size", len(tokens))
    if len(tokens) > n_vocab:
        raise ValueError(f"{path} has {len(tokens)} tokens but config says vocab_size={n_vocab}")
    for token in (_CLS, _SEP, _PAD, _UNK, _MASK):
        if token not in tokens:
            raise ValueError(f"{path} lacks the special token {token}")
    # Rows of the embedding matrix without a vocab line still need a (never produced) token.
    tokens += [f"[PAD{i}]" for i in range(len(tokens), n_vocab)]
    return tokens


def _read_model_card(path: Path) -> dict[str, str]:
    """Title (first level-1 heading) and license (front matter) of a Hugging Face model card."""
    if not path.is_file():
        return {}
    card: dict[str, str] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    front = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if front:
        lic = re.search(r"^license:\s*(\S+)\s*$", front.group(1), re.M)
        if lic:
            card["license"] = lic.group(1).strip("'\"")
        text = text[front.end() :]
    title = re.search(r"^# (.+?)\s*$", text, re.M)
    if title:
        card["title"] = title.group(1)
    return card


def _read_pooling(path: Path) -> gguf.PoolingType:
    """The pooling a sentence-transformers model was trained with; mean when not stated."""
    if not path.is_file():
        return gguf.PoolingType.MEAN
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if config.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if config.get("pooling_mode_mean_tokens", True):
        return gguf.PoolingType.MEAN
    raise ValueError(f"{path}: only mean or CLS pooling is supported")


def _name_from_dir(model_dir: Path) -> str:
    for part in (model_dir.resolve(), *model_dir.resolve().parents):
        if part.name and part.name.lower() not in _GENERIC_DIR_NAMES:
            return part.name
    return "bert"


def _token_type(token: str) -> gguf.TokenType:
    if token == _UNK:
        return gguf.TokenType.UNKNOWN
    if token in (_CLS, _SEP, _PAD, _MASK):
        return gguf.TokenType.CONTROL
    if _UNUSED_RE.match(token) or re.fullmatch(r"\[PAD\d+\]", token):
        return gguf.TokenType.UNUSED
    return gguf.TokenType.NORMAL


def _phantom(token: str, token_type: gguf.TokenType) -> str:
    """llama.cpp's WordPiece marks word starts with U+2581 instead of marking pieces with ##."""
    if token_type != gguf.TokenType.NORMAL:
        return token
    if token.startswith("##"):
        return token[2:]
    return PHANTOM_SPACE + token


def _add_metadata(
    writer: gguf.GGUFWriter,
    config: dict,
    tokens: list[str],
    file_type: gguf.LlamaFileType,
    model_name: str,
    license: str | None,
    pooling: gguf.PoolingType,
) -> None:
    writer.add_name(model_name)
    writer.add_basename(model_name)
    if license:
        writer.add_license(license)
    writer.add_file_type(file_type)
    writer.add_uint32("semdex.converter_version", CONVERTER_VERSION)

    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config.get("layer_norm_eps", 1e-12))
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)

    types = [_token_type(t) for t in tokens]
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")  # llama.cpp ignores the pre-tokenizer for WordPiece
    writer.add_token_list([_phantom(t, k) for t, k in zip(tokens, types, strict=True)])
    writer.add_token_types([int(k) for k in types])

    ids = {t: i for i, t in enumerate(tokens)}
    writer.add_bos_token_id(ids[_CLS])  # GGUF has no CLS key; llama.cpp uses BOS as CLS
    writer.add_eos_token_id(ids[_SEP])
    writer.add_unk_token_id(ids[_UNK])
    writer.add_sep_token_id(ids[_SEP])
    writer.add_pad_token_id(ids[_PAD])
    writer.add_mask_token_id(ids[_MASK])
    # What gguf-py's SpecialVocab derives from BERT's "[CLS] $A [SEP]" post-processor: one
    # sentence becomes CLS ... SEP (SEP doubling as EOS), and no extra separator.
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    writer.add_add_sep_token(False)


def _map_tensors(
    weights: dict[str, np.ndarray], config: dict, source: Path
) -> Iterator[tuple[str, np.ndarray]]:
    n_layers = config["num_hidden_layers"]
    seen: set[str] = set()
    for hf_name in sorted(weights):
        name = hf_name.removeprefix("bert.")
        name = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))
        if name.startswith(_DROPPED_PREFIXES):
            continue
        gguf_name = _gguf_name(name, n_layers)
        if gguf_name is None:
            raise ValueError(f"{source}: unexpected tensor {hf_name!r} for a BERT encoder")
        seen.add(gguf_name)
        yield gguf_name, weights[hf_name]

    expected = {f"{v}.{s}" for v in _EMBEDDING_PARTS.values() for s in ("weight", "bias")}
    expected -= {"token_embd.bias", "token_types.bias", "position_embd.bias"}
    expected |= {
        f"blk.{i}.{v}.{s}"
        for i in range(n_layers)
        for v in _LAYER_PARTS.values()
        for s in ("weight", "bias")
    }
    if missing := sorted(expected - seen):
        raise ValueError(
            f"{source} lacks tensors: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )


def _gguf_name(name: str, n_layers: int) -> str | None:
    stem, _, suffix = name.rpartition(".")
    if stem in _EMBEDDING_PARTS and suffix in ("weight", "bias"):
        return f"{_EMBEDDING_PARTS[stem]}.{suffix}"
    match = _LAYER_RE.match(name)
    if match and int(match[1]) < n_layers and match[2] in _LAYER_PARTS:
        return f"blk.{match[1]}.{_LAYER_PARTS[match[2]]}.{match[3]}"
    return None


def _cast(name: str, data: np.ndarray, ftype: str) -> np.ndarray:
    if ftype == "f16" and data.ndim > 1 and name not in _ALWAYS_F32:
        return data.astype(np.float16)
    return data.astype(np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m desktop.models.convert_bert",
        description="Convert a Hugging Face BERT model folder to GGUF for llama.cpp.",
    )
    parser.add_argument(
        "model_dir", type=Path, help="folder with config.json, vocab.txt, model.safetensors"
    )
    parser.add_argument("out", type=Path, help="GGUF file to write")
    parser.add_argument("--ftype", choices=sorted(FTYPES), default="f16")
    parser.add_argument("--name", help="general.name to record (default: from the model card)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        convert_bert(args.model_dir, args.out, ftype=args.ftype, name=args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
