"""desktop.models.profiles: which family a GGUF file belongs to, and the exact text each family
embeds.

Names are made the way real GGUF files get them: gguf-py (the library llama.cpp's converter
uses) turns a Hugging Face id such as "intfloat/e5-large-v2" into general.name "E5 Large v2"
and general.basename "e5". Detection must work from the name alone (Ollama stores models under
hash file names), from the basename alone and from the file name alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf.metadata import Metadata

from desktop.models.gguf_info import ModelInfo, TensorInfo, read_model_info
from desktop.models.profiles import (
    DEFAULT_TASK,
    POOL_CLS,
    POOL_LAST,
    POOL_MEAN,
    PROFILES,
    TASKS,
    NotAnEmbedder,
    Profile,
    detect_profile,
    family_names,
)
from tests.fixtures.tiny_gguf import (
    write_adapter,
    write_tiny_llama,
    write_tiny_llama_with_pooling,
    write_unknown_arch,
    write_vocab_only,
)

GENERIC_FILE = "sha256-6f1c2a0b9e.gguf"  # what Ollama calls a model on disk

# family -> (Hugging Face id, architecture, pooling_type in the file or None)
NAMED = {
    "e5-mistral": ("intfloat/e5-mistral-7b-instruct", "llama", None),
    "sfr-embedding-mistral": ("Salesforce/SFR-Embedding-Mistral", "llama", None),
    "linq-embed-mistral": ("Linq-AI-Research/Linq-Embed-Mistral", "llama", None),
    "gte-qwen2": ("Alibaba-NLP/gte-Qwen2-7B-instruct", "qwen2", None),
    "qwen3-embedding": ("Qwen/Qwen3-Embedding-0.6B", "qwen3", None),
    "nomic-embed-text": ("nomic-ai/nomic-embed-text-v1.5", "nomic-bert", 1),
    "bge": ("BAAI/bge-small-en-v1.5", "bert", 2),
    "bge-m3": ("BAAI/bge-m3", "bert", 2),
    "mxbai-embed": ("mixedbread-ai/mxbai-embed-large-v1", "bert", 2),
    "arctic-embed": ("Snowflake/snowflake-arctic-embed-m-v1.5", "bert", 2),
    "e5": ("intfloat/e5-large-v2", "bert", 1),
    "all-minilm": ("sentence-transformers/all-MiniLM-L6-v2", "bert", 1),
    "embeddinggemma": ("google/embeddinggemma-300m", "gemma-embedding", 1),
}
# More ids of the same families, with other spellings.
MORE_NAMED = [
    ("intfloat/multilingual-e5-small", "bert", 1, "e5"),
    ("intfloat/e5-base-v2", "bert", 1, "e5"),
    ("sentence-transformers/all-mpnet-base-v2", "bert", 1, "all-minilm"),
    ("Salesforce/SFR-Embedding-2_R", "llama", None, "sfr-embedding-mistral"),
    ("BAAI/bge-large-en-v1.5", "bert", 2, "bge"),
]
# Fallback families: no recognisable name, decided by architecture and pooling.
UNNAMED = {
    "encoder-mean": ("bert", 1),
    "encoder-cls": ("bert", 2),
    "decoder-last": ("llama", 3),
    "qwen3-embedding": ("qwen3", 3),
    "nomic-embed-text": ("nomic-bert", 1),
    "embeddinggemma": ("gemma-embedding", 1),
}


def make_info(*, arch: str, name: str | None = None, basename: str | None = None,
              filename: str = GENERIC_FILE, pooling: int | None = None,
              ctx: int | None = 512, extra: dict | None = None,
              tensors: bool = True) -> ModelInfo:
    md: dict = {"general.architecture": arch, "general.type": "model",
                f"{arch}.embedding_length": 384}
    if name is not None:
        md["general.name"] = name
    if basename is not None:
        md["general.basename"] = basename
    if pooling is not None:
        md[f"{arch}.pooling_type"] = pooling
    if ctx is not None:
        md[f"{arch}.context_length"] = ctx
    md.update(extra or {})
    tensor_list = [TensorInfo("token_embd.weight", (384, 1000), 1, 0)] if tensors else []
    return ModelInfo(Path("/models") / filename, 1_000_000, 3, md, tensor_list)


def gguf_names(hf_id: str) -> tuple[str, str | None]:
    """(general.name, general.basename) as llama.cpp's converter would write them."""
    full, _org, basename, _ft, _version, _size = Metadata.get_model_id_components(hf_id)
    return Metadata.id_to_title(full), basename


def test_every_family_is_tested() -> None:
    assert set(NAMED) | set(UNNAMED) == set(PROFILES) == set(family_names())


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("family", list(NAMED))
def test_detect_by_general_name(family: str) -> None:
    hf_id, arch, pooling = NAMED[family]
    name, _ = gguf_names(hf_id)
    info = make_info(arch=arch, name=name, pooling=pooling)
    assert detect_profile(info).family == family, name


@pytest.mark.parametrize("family", list(NAMED))
def test_detect_by_file_name(family: str) -> None:
    hf_id, arch, pooling = NAMED[family]
    filename = hf_id.split("/")[1] + ".Q8_0.gguf"
    info = make_info(arch=arch, filename=filename, pooling=pooling)  # no general.name
    assert info.name == filename.removesuffix(".gguf")
    assert detect_profile(info).family == family, filename


@pytest.mark.parametrize("hf_id,family", [
    ("intfloat/e5-mistral-7b-instruct", "e5-mistral"),
    ("Alibaba-NLP/gte-Qwen2-7B-instruct", "gte-qwen2"),
    ("Qwen/Qwen3-Embedding-0.6B", "qwen3-embedding"),
    ("nomic-ai/nomic-embed-text-v1.5", "nomic-embed-text"),
    ("BAAI/bge-small-en-v1.5", "bge"),
    ("mixedbread-ai/mxbai-embed-large-v1", "mxbai-embed"),
    ("Snowflake/snowflake-arctic-embed-m-v1.5", "arctic-embed"),
    ("intfloat/e5-base-v2", "e5"),
    ("sentence-transformers/all-MiniLM-L6-v2", "all-minilm"),
    ("google/embeddinggemma-300m", "embeddinggemma"),
])
def test_detect_by_basename(hf_id: str, family: str) -> None:
    _, basename = gguf_names(hf_id)
    assert basename, hf_id
    arch, pooling = NAMED[family][1], NAMED[family][2]
    info = make_info(arch=arch, name="Model", basename=basename, pooling=pooling)
    assert detect_profile(info).family == family, basename


@pytest.mark.parametrize("hf_id,arch,pooling,family", MORE_NAMED)
def test_detect_other_spellings(hf_id: str, arch: str, pooling: int | None,
                                family: str) -> None:
    name, basename = gguf_names(hf_id)
    info = make_info(arch=arch, name=name, basename=basename, pooling=pooling)
    assert detect_profile(info).family == family, (name, basename)


@pytest.mark.parametrize("family", list(UNNAMED))
def test_detect_by_architecture(family: str) -> None:
    arch, pooling = UNNAMED[family]
    info = make_info(arch=arch, name="Some Model", pooling=pooling)
    assert detect_profile(info).family == family


def test_real_files_are_detected(starter_model: Path, tmp_path: Path) -> None:
    assert detect_profile(read_model_info(starter_model)).family == "all-minilm"
    tiny = read_model_info(write_tiny_llama(tmp_path / "model.gguf"))  # general.name e5-mistral
    assert detect_profile(tiny).family == "e5-mistral"
    pooled = write_tiny_llama_with_pooling(tmp_path / "p.gguf", POOL_LAST, name="my-decoder")
    assert detect_profile(read_model_info(pooled)).family == "decoder-last"


def test_family_override(starter_model: Path) -> None:
    info = read_model_info(starter_model)
    assert detect_profile(info, "bge").family == "bge"
    assert detect_profile(info, "  E5 ").family == "e5"
    with pytest.raises(NotAnEmbedder, match="unknown model family 'no-such'.*all-minilm"):
        detect_profile(info, "no-such")


# --------------------------------------------------------------------------- refusals


def test_vocab_only_file_is_refused(tmp_path: Path) -> None:
    info = read_model_info(write_vocab_only(tmp_path / "ggml-vocab.gguf"))
    for override in (None, "e5-mistral"):
        with pytest.raises(NotAnEmbedder, match="ggml-vocab.gguf holds no weights"):
            detect_profile(info, override)


def test_adapter_is_refused(tmp_path: Path) -> None:
    info = read_model_info(write_adapter(tmp_path / "lora.gguf"))
    for override in (None, "decoder-last"):
        with pytest.raises(NotAnEmbedder, match="lora.gguf is an adapter file, not a model"):
            detect_profile(info, override)


def test_file_without_architecture_is_refused() -> None:
    info = make_info(arch="bert", name="bge-small-en-v1.5")
    del info.metadata["general.architecture"]
    for override in (None, "bge"):
        with pytest.raises(NotAnEmbedder, match="does not say which architecture"):
            detect_profile(info, override)


def test_chat_decoder_is_refused_with_a_way_out(tmp_path: Path) -> None:
    info = read_model_info(write_tiny_llama(tmp_path / "chat.gguf", name="SmolLM2 135M Instruct"))
    with pytest.raises(NotAnEmbedder) as err:
        detect_profile(info)
    message = str(err.value)
    assert "chat.gguf" in message
    assert "--family decoder-last" in message
    assert detect_profile(info, "decoder-last").family == "decoder-last"


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    info = read_model_info(write_unknown_arch(tmp_path / "odd.gguf"))
    with pytest.raises(NotAnEmbedder, match="odd.gguf uses the architecture 'made-up-arch'"):
        detect_profile(info)


@pytest.mark.parametrize("hf_id,arch,pooling", [
    ("BAAI/bge-reranker-v2-m3", "bert", 4),
    ("BAAI/bge-reranker-base", "bert", None),
    ("Qwen/Qwen3-Reranker-0.6B", "qwen3", None),
])
def test_reranker_is_refused(hf_id: str, arch: str, pooling: int | None) -> None:
    name, basename = gguf_names(hf_id)
    info = make_info(arch=arch, name=name, basename=basename, pooling=pooling)
    with pytest.raises(NotAnEmbedder, match="reranker"):
        detect_profile(info)


# --------------------------------------------------------------------------- formatting

INSTRUCT_SPACE = ["e5-mistral", "sfr-embedding-mistral", "linq-embed-mistral", "gte-qwen2"]


@pytest.mark.parametrize("family", INSTRUCT_SPACE)
def test_instruct_query_format(family: str) -> None:
    p = PROFILES[family]
    assert p.format_query("how do cats sleep") == (
        "Instruct: Given a web search query, retrieve relevant passages that answer the query"
        "\nQuery: how do cats sleep")
    assert p.format_query("q", task="qa") == f"Instruct: {TASKS['qa']}\nQuery: q"
    assert p.format_query("q", task="claims") == f"Instruct: {TASKS['claims']}\nQuery: q"
    assert p.format_query("q", instruction="Find recipes") == "Instruct: Find recipes\nQuery: q"
    assert p.format_document("how do cats sleep") == "how do cats sleep"
    assert p.pooling == POOL_LAST and p.ensure_eos and p.instruct
    assert p.tasks == list(TASKS)


def test_qwen3_query_has_no_space_after_the_colon() -> None:
    p = PROFILES["qwen3-embedding"]
    assert p.format_query("capital of France") == (
        f"Instruct: {TASKS[DEFAULT_TASK]}\nQuery:capital of France")
    assert p.format_query("q", instruction="Find code") == "Instruct: Find code\nQuery:q"
    assert p.format_document("Paris") == "Paris"
    assert p.pooling == POOL_LAST and p.ensure_eos


def test_prefix_families() -> None:
    nomic, bge, e5, gemma = (PROFILES[f] for f in ("nomic-embed-text", "bge", "e5",
                                                    "embeddinggemma"))
    assert nomic.format_query("q") == "search_query: q"
    assert nomic.format_document("d") == "search_document: d"
    bge_prefix = "Represent this sentence for searching relevant passages: "
    assert bge.format_query("q") == bge_prefix + "q"
    assert bge.format_query("q", task="qa") == bge_prefix + "q"
    assert bge.format_query("q", task="similar") == "q"
    assert bge.format_document("d") == "d"
    assert PROFILES["mxbai-embed"].format_query("q") == bge_prefix + "q"
    assert PROFILES["arctic-embed"].format_query("q") == bge_prefix + "q"
    assert e5.format_query("q") == "query: q"
    assert e5.format_document("d") == "passage: d"
    assert gemma.format_query("q") == "task: search result | query: q"
    assert gemma.format_query("q", task="qa") == "task: question answering | query: q"
    assert gemma.format_document("d") == "title: none | text: d"
    for raw in ("all-minilm", "bge-m3", "encoder-mean", "encoder-cls", "decoder-last"):
        assert PROFILES[raw].format_query("q", task="qa") == "q"
        assert PROFILES[raw].format_document("d") == "d"


def test_pooling_per_family() -> None:
    assert {f for f, p in PROFILES.items() if p.pooling == POOL_CLS} == {
        "bge", "bge-m3", "mxbai-embed", "arctic-embed", "encoder-cls"}
    assert {f for f, p in PROFILES.items() if p.pooling == POOL_MEAN} == {
        "nomic-embed-text", "e5", "all-minilm", "embeddinggemma", "encoder-mean"}
    assert {f for f, p in PROFILES.items() if p.ensure_eos} == {
        f for f, p in PROFILES.items() if p.pooling == POOL_LAST}


@pytest.mark.parametrize("family", list(PROFILES))
def test_documents_never_get_an_instruction(family: str) -> None:
    p = PROFILES[family]
    doc = p.format_document("the meeting notes")
    assert doc.endswith("the meeting notes")
    assert "Instruct" not in doc and "query" not in doc.lower()
    for instruction in TASKS.values():
        assert instruction not in doc


def test_braces_in_queries_and_instructions_are_text() -> None:
    p = PROFILES["e5-mistral"]
    assert p.format_query("{q} {task} {}", instruction="Use {x}") == (
        "Instruct: Use {x}\nQuery: {q} {task} {}")
    assert PROFILES["nomic-embed-text"].format_document("{d}") == "search_document: {d}"


# --------------------------------------------------------------------------- sizes


def test_max_tokens_capped_by_the_files_context() -> None:
    short = detect_profile(make_info(arch="bert", name="bge-small-en-v1.5", ctx=128))
    assert short.max_tokens == 128 and short.default_chunk <= 128
    full = detect_profile(make_info(arch="bert", name="bge-small-en-v1.5", ctx=512))
    assert full.max_tokens == 512
    long = detect_profile(make_info(arch="llama", name="e5-mistral-7b-instruct", ctx=32768))
    assert long.max_tokens == 4096  # the family's trained length, not the configured 32k
    tiny = detect_profile(make_info(arch="llama", name="e5-mistral-7b-instruct", ctx=300))
    assert tiny.max_tokens == 300 and tiny.default_chunk == 300
    assert PROFILES["e5-mistral"].max_tokens == 4096  # the shared profile is not modified
    assert isinstance(tiny, Profile)
