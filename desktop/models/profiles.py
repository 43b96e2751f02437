"""Model families: how each embedder wants its queries, documents, pooling and end token.

Retrieval quality depends on getting these exactly as the model was trained: the instruction
template of the 7B instruct embedders, the prefixes of nomic/e5/bge, the pooling (llama.cpp's
LLaMA loader never reads it from the file, so it is always passed explicitly) and whether the
sequence must end with EOS. The facts come from each model's own card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from desktop.models.gguf_info import ENCODER_ARCHS, ModelInfo

# llama.cpp's enum llama_pooling_type
POOL_NONE, POOL_MEAN, POOL_CLS, POOL_LAST, POOL_RANK = 0, 1, 2, 3, 4
POOLING_NAMES = {POOL_MEAN: "mean", POOL_CLS: "cls", POOL_LAST: "last"}

# Task instructions as used by the published retrieval scores (documents never get one).
TASKS: dict[str, str] = {
    "general": "Given a web search query, retrieve relevant passages that answer the query",
    "qa": "Given a question, retrieve relevant documents that best answer the question",
    "similar": "Retrieve semantically similar text",
    "claims": "Given a scientific claim, retrieve documents that support or refute the claim",
    "counter": "Given a claim, find documents that refute the claim",
    "code": "Given a natural language query, retrieve relevant code snippets",
}
TASK_LABELS: dict[str, str] = {
    "general": "General search",
    "qa": "Question answering",
    "similar": "Similar passages",
    "claims": "Check a claim",
    "counter": "Find counter-arguments",
    "code": "Code search",
}
DEFAULT_TASK = "general"

_BGE_PREFIX = "Represent this sentence for searching relevant passages: "


class NotAnEmbedder(Exception):
    """The file is a valid GGUF, but not a model Semdex can embed with."""


@dataclass(frozen=True)
class Profile:
    family: str
    label: str
    pooling: int
    query_template: str = "{q}"          # {task} is the instruction, {q} the query
    doc_template: str = "{d}"
    ensure_eos: bool = False             # decoder embedders end every sequence with EOS
    eos_text: str | None = None          # which token that is, when the file's EOS differs
    instruct: bool = False               # query_template uses {task}
    max_tokens: int = 512                # longest passage the model was trained on
    default_chunk: int = 256
    task_templates: dict[str, str] = field(default_factory=dict)  # task -> query template

    def format_query(self, query: str, task: str | None = None,
                     instruction: str | None = None) -> str:
        """The exact text the model embeds for a query."""
        task = task or DEFAULT_TASK
        if self.instruct:
            text = instruction or TASKS.get(task) or TASKS[DEFAULT_TASK]
            return self.query_template.format(task=text, q=query)
        template = self.task_templates.get(task, self.query_template)
        return template.format(q=query)

    def format_document(self, text: str) -> str:
        return self.doc_template.format(d=text)

    @property
    def pooling_name(self) -> str:
        return POOLING_NAMES.get(self.pooling, str(self.pooling))

    @property
    def tasks(self) -> list[str]:
        """Task presets that change what this family embeds for a query."""
        if self.instruct:
            return list(TASKS)
        return [t for t in TASKS if t in self.task_templates] or [DEFAULT_TASK]


def _mistral_instruct(family: str, label: str) -> Profile:
    return Profile(family, label, POOL_LAST, "Instruct: {task}\nQuery: {q}", ensure_eos=True,
                   eos_text="</s>", instruct=True, max_tokens=4096, default_chunk=512)


_GEMMA_TASKS = {
    "general": "task: search result | query: {q}",
    "qa": "task: question answering | query: {q}",
    "similar": "task: sentence similarity | query: {q}",
    "claims": "task: fact checking | query: {q}",
    "counter": "task: fact checking | query: {q}",
    "code": "task: code retrieval | query: {q}",
}

PROFILES: dict[str, Profile] = {p.family: p for p in [
    _mistral_instruct("e5-mistral", "E5-Mistral-7B-Instruct"),
    _mistral_instruct("sfr-embedding-mistral", "SFR-Embedding-Mistral"),
    _mistral_instruct("linq-embed-mistral", "Linq-Embed-Mistral"),
    Profile("gte-qwen2", "gte-Qwen2-instruct", POOL_LAST, "Instruct: {task}\nQuery: {q}",
            ensure_eos=True, eos_text="<|endoftext|>", instruct=True, max_tokens=8192,
            default_chunk=512),
    Profile("qwen3-embedding", "Qwen3-Embedding", POOL_LAST, "Instruct: {task}\nQuery:{q}",
            ensure_eos=True, eos_text="<|endoftext|>", instruct=True, max_tokens=8192,
            default_chunk=512),
    Profile("nomic-embed-text", "nomic-embed-text", POOL_MEAN, "search_query: {q}",
            "search_document: {d}", max_tokens=2048, default_chunk=512),
    Profile("bge", "BGE (en v1.5)", POOL_CLS, _BGE_PREFIX + "{q}", max_tokens=512,
            task_templates={t: _BGE_PREFIX + "{q}" for t in TASKS if t != "similar"}
            | {"similar": "{q}"}),
    Profile("bge-m3", "BGE-M3", POOL_CLS, max_tokens=8192, default_chunk=512),
    Profile("mxbai-embed", "mxbai-embed-large", POOL_CLS, _BGE_PREFIX + "{q}", max_tokens=512),
    Profile("arctic-embed", "Snowflake Arctic Embed", POOL_CLS, _BGE_PREFIX + "{q}",
            max_tokens=512),
    Profile("e5", "E5 (v2 / multilingual)", POOL_MEAN, "query: {q}", "passage: {d}",
            max_tokens=512),
    Profile("all-minilm", "all-MiniLM (sentence-transformers)", POOL_MEAN, max_tokens=256,
            default_chunk=256),
    Profile("embeddinggemma", "EmbeddingGemma", POOL_MEAN, _GEMMA_TASKS["general"],
            "title: none | text: {d}", max_tokens=2048, default_chunk=512,
            task_templates=_GEMMA_TASKS),
    # Fallbacks for models of no known family; the person can always name the family.
    Profile("encoder-mean", "Other encoder (mean pooling)", POOL_MEAN, max_tokens=512),
    Profile("encoder-cls", "Other encoder (CLS pooling)", POOL_CLS, max_tokens=512),
    Profile("decoder-last", "Other decoder (last token, EOS)", POOL_LAST, ensure_eos=True,
            max_tokens=4096, default_chunk=512),
]}

# (pattern over "name basename filename", family), first match wins
_NAME_RULES: list[tuple[str, str]] = [
    (r"linq-?embed", "linq-embed-mistral"),
    (r"sfr-?embedding", "sfr-embedding-mistral"),
    (r"e5-?mistral", "e5-mistral"),
    (r"qwen3-?embedding", "qwen3-embedding"),
    (r"gte-?qwen", "gte-qwen2"),
    (r"nomic-?embed", "nomic-embed-text"),
    (r"bge-?m3", "bge-m3"),
    (r"\bbge\b|bge-", "bge"),
    (r"mxbai-?embed", "mxbai-embed"),
    (r"arctic-?embed", "arctic-embed"),
    (r"embedding-?gemma|embeddinggemma", "embeddinggemma"),
    (r"multilingual-e5|\be5-(small|base|large)", "e5"),
    (r"minilm|mpnet", "all-minilm"),
]
_ARCH_RULES = {"nomic-bert": "nomic-embed-text", "gemma-embedding": "embeddinggemma"}


def family_names() -> list[str]:
    return list(PROFILES)


def _identity(info: ModelInfo) -> str:
    # gguf-py writes general.name as a title ("SFR Embedding Mistral", "E5 Large v2"), so
    # spaces and underscores count as hyphens; the parts stay apart so that no pattern
    # matches across two of them.
    parts = [info.name, info.basename or "", info.path.name]
    return " ".join(re.sub(r"[\s_]+", "-", part.strip()) for part in parts).lower()


def detect_profile(info: ModelInfo, override: str | None = None) -> Profile:
    """Pick the family from the file's metadata and name, or the person's choice."""
    _refuse_non_models(info)
    if override:
        key = override.strip().lower()
        if key not in PROFILES:
            raise NotAnEmbedder(
                f"unknown model family {override!r}; known: {', '.join(PROFILES)}")
        return _sized(PROFILES[key], info)
    ident = _identity(info)
    if info.pooling_type == POOL_RANK or "rerank" in ident:
        raise NotAnEmbedder(
            f"{info.path.name} is a reranker ({info.name}): it scores query/passage pairs "
            "and makes no embeddings. Choose an embedding model.")
    for pattern, family in _NAME_RULES:
        if re.search(pattern, ident):
            return _sized(PROFILES[family], info)
    if info.arch in _ARCH_RULES:
        return _sized(PROFILES[_ARCH_RULES[info.arch]], info)
    pooling = info.pooling_type
    if info.arch == "qwen3" and pooling == POOL_LAST:
        return _sized(PROFILES["qwen3-embedding"], info)
    if info.arch in ENCODER_ARCHS or not info.causal:
        return _sized(PROFILES["encoder-cls" if pooling == POOL_CLS else "encoder-mean"], info)
    if pooling in (POOL_MEAN, POOL_CLS, POOL_LAST):
        return _sized(PROFILES["decoder-last"], info)
    if not _known_arch(info.arch):
        raise NotAnEmbedder(
            f"{info.path.name} uses the architecture {info.arch!r}, which llama.cpp does not "
            "know, and its name is not one of a known embedding model.")
    raise NotAnEmbedder(
        f"{info.path.name} looks like a chat or text-generation model ({info.arch}, "
        f"{info.name}), not an embedding model: its vectors would not find anything. "
        "Choose an embedder, or pass --family decoder-last to use it anyway."
    )


def _refuse_non_models(info: ModelInfo) -> None:
    gtype = info.general_type
    if gtype and gtype != "model":
        article = "an" if gtype[:1].lower() in "aeiou" else "a"
        raise NotAnEmbedder(f"{info.path.name} is {article} {gtype} file, not a model")
    if not info.tensors:
        raise NotAnEmbedder(f"{info.path.name} holds no weights (a vocabulary-only file)")
    if not info.arch:
        raise NotAnEmbedder(f"{info.path.name} does not say which architecture it is")
    if info.arch in ("clip", "mllama-vision", "whisper"):
        raise NotAnEmbedder(f"{info.path.name} is a {info.arch} model, not a text embedder")
    if info.embedding_length is None:
        raise NotAnEmbedder(f"{info.path.name} has no {info.arch}.embedding_length")


def _known_arch(arch: str) -> bool:
    """Whether gguf-py (which follows llama.cpp) knows the architecture; True if unsure."""
    try:
        from gguf.constants import MODEL_ARCH_NAMES
    except ImportError:  # pragma: no cover - gguf is a dependency
        return True
    return arch in set(MODEL_ARCH_NAMES.values())


def _sized(profile: Profile, info: ModelInfo) -> Profile:
    """Never let passages be longer than the file's own context allows."""
    ctx = info.context_length
    if ctx and ctx < profile.max_tokens:
        from dataclasses import replace

        return replace(profile, max_tokens=ctx, default_chunk=min(profile.default_chunk, ctx))
    return profile
