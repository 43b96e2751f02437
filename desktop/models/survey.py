"""The models on this machine, each described once, for `semdex models` and the model picker.

Both faces show the same facts: which GGUF files were found (discovery), which one is in use,
what each would cost in memory and where it would run (memory), and which recommended models
are not here yet (catalogue). They differ only in the wording: the command prints JSON or lines,
the picker a table with text for people. The slow part (walking the model folders, reading every
header, asking the GPU driver) is ``survey``, which the picker runs on a pool thread.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.models.catalogue import CatalogueEntry, missing_from
from desktop.models.chat_template import default_context
from desktop.models.discovery import DiscoveredModel, Locations, discover
from desktop.models.gpu import GpuInfo, detect
from desktop.models.memory import (
    MIN_BATCH_TOKENS,
    MemoryEstimate,
    Verdict,
    assess,
    semdex_batch_tokens,
    verdict,
)
from desktop.models.starter import starter_location
from desktop.models.units import GiB, MiB


@dataclass(frozen=True)
class ModelDescription:
    """One GGUF file found here: what it is, whether it is the model in use, and for a usable
    one its memory estimate and the fit verdict on this machine."""

    model: DiscoveredModel
    active: bool
    estimate: MemoryEstimate | None = None
    verdict: Verdict | None = None

    @property
    def usable(self) -> bool:
        return self.model.usable

    @property
    def retryable(self) -> bool:
        """It failed its trial load, and may be tried again (after an update of llama.cpp, or
        with other settings)."""
        return self.model.check is not None and self.model.profile is not None

    @property
    def size_bytes(self) -> int:
        """All parts of a split model; for a file discovery could not read, its size on disk."""
        if self.model.size_bytes:
            return self.model.size_bytes
        try:
            return self.model.path.stat().st_size
        except OSError:
            return 0

    def to_dict(self) -> dict[str, Any]:
        """The entry `semdex models --json` prints for it (scripts rely on these keys)."""
        m = self.model
        e: dict[str, Any] = {"path": str(m.path), "name": m.name, "source": m.source,
                             "location": str(m.location), "size_bytes": self.size_bytes,
                             "usable": m.usable, "active": self.active}
        if m.info is not None:
            info = m.info
            e.update(arch=info.arch, quantization=info.quantization, dims=info.embedding_length,
                     context_length=info.context_length, parameters=info.size_label,
                     license=info.license)
        if not m.usable or m.profile is None or self.estimate is None or self.verdict is None:
            e["problem"] = m.problem
            if m.check is not None:
                e["check"] = m.check.to_dict()
            return e
        p = m.profile
        e.update(family=p.family, label=p.label, pooling=p.pooling_name,
                 query_template=p.query_template, document_template=p.doc_template,
                 tasks=p.tasks, max_tokens=p.max_tokens, memory=self.estimate.to_dict(),
                 verdict=self.verdict.to_dict(), fit=self.verdict.describe())
        return e


def active_model(chosen: str | os.PathLike[str] | None) -> Path:
    """The model in use: the one chosen, else the starter (as the engine resolves it)."""
    return Path(chosen).expanduser().resolve() if chosen else starter_location().resolve()


def describe(m: DiscoveredModel, gpu: GpuInfo, active: Path | None,
             chunk_tokens: int | None = None) -> ModelDescription:
    """A discovered file on this machine. active: the model in use (active_model), resolved;
    chunk_tokens: the passage length setting, which decides the batch the model loads with."""
    is_active = active is not None and m.path == active
    if not m.usable or m.info is None or m.profile is None:
        return ModelDescription(m, is_active)
    p = m.profile
    batch = semdex_batch_tokens(p.max_tokens, chunk_tokens, p.default_chunk)
    est, v = assess(m.info, gpu, batch, extra_weight_bytes=max(m.size_bytes - m.info.file_size, 0))
    return ModelDescription(m, is_active, est, v)


@dataclass(frozen=True)
class Suggestion:
    """A recommended model that is not on this machine, and how it would run here."""

    entry: CatalogueEntry
    verdict: Verdict


@dataclass(frozen=True)
class ChatDescription:
    """A chat model found here (for Ask): its template, the context it would load with, its
    memory and fit there, and whether it fits beside the embedder in use."""

    model: DiscoveredModel
    chosen: bool
    context: int = 0
    estimate: MemoryEstimate | None = None
    verdict: Verdict | None = None
    together: str = ""  # beside the embedder: on the GPU, or in RAM, or not

    @property
    def usable(self) -> bool:
        return self.model.chat is not None and self.verdict is not None

    def to_dict(self) -> dict[str, Any]:
        m = self.model
        e: dict[str, Any] = {"path": str(m.path), "name": m.name, "source": m.source,
                             "usable": self.usable, "chosen": self.chosen}
        if m.info is not None:
            e.update(arch=m.info.arch, quantization=m.info.quantization,
                     parameters=m.info.size_label, context_length=m.info.context_length)
        if not self.usable:
            e["problem"] = m.chat_problem or m.problem
            return e
        assert m.chat is not None and self.estimate is not None and self.verdict is not None
        e.update(template=m.chat.family, context=self.context,
                 kv_bytes_per_token=self.estimate.kv_bytes // max(1, self.context),
                 memory=self.estimate.to_dict(), verdict=self.verdict.to_dict(),
                 fit=self.verdict.summary, together=self.together)
        return e


@dataclass
class Survey:
    gpu: GpuInfo  # as detected (the estimates use the thread setting, when there is one)
    models: list[ModelDescription] = field(default_factory=list)
    missing: list[Suggestion] = field(default_factory=list)
    chats: list[ChatDescription] = field(default_factory=list)


def describe_chat(m: DiscoveredModel, gpu: GpuInfo, chosen: Path | None,
                  context: int | None, embedder: ModelDescription | None) -> ChatDescription:
    """A chat model with the context it would load with (the setting, else its default)."""
    is_chosen = chosen is not None and m.path == chosen
    if m.chat is None or m.info is None:
        return ChatDescription(m, is_chosen)
    ctx = context or default_context(m.info, m.chat)
    est, v = assess(m.info, gpu, MIN_BATCH_TOKENS,
                    extra_weight_bytes=max(m.size_bytes - m.info.file_size, 0),
                    context_tokens=ctx)
    return ChatDescription(m, is_chosen, ctx, est, v, _together(est, v, embedder, gpu))


def _together(chat: MemoryEstimate, v: Verdict, embedder: ModelDescription | None,
              gpu: GpuInfo) -> str:
    """Whether the chat model and the embedder in use fit the machine at once."""
    if embedder is None or embedder.estimate is None or embedder.verdict is None:
        return ""
    emb, ev = embedder.estimate, embedder.verdict
    if v.placement == "gpu" and ev.placement == "gpu":
        both = chat.gpu_bytes(gpu.kind) + emb.gpu_bytes(gpu.kind)
        room = gpu.free_bytes - max(256 * MiB, int(0.05 * gpu.total_bytes))
        if both <= room:
            return f"both fit on the GPU ({both / GiB:.1f} GiB of {room / GiB:.1f} GiB free)"
        return (f"together they need {both / GiB:.1f} GiB of GPU memory, "
                f"{max(room, 0) / GiB:.1f} GiB free: one of them runs partly on the CPU")
    on_cpu = (chat.cpu_bytes if v.placement in ("cpu", "too_big") else 0) + (
        emb.cpu_bytes if ev.placement in ("cpu", "too_big") else 0)
    avail = gpu.ram_available_bytes or gpu.ram_total_bytes
    if on_cpu and avail and on_cpu > avail:
        return (f"together they need about {on_cpu / GiB:.1f} GiB of memory, "
                f"{avail / GiB:.1f} GiB free: close other programs")
    return "both fit"


def survey(folders: list[str | os.PathLike[str]], chosen: str | os.PathLike[str] | None = None,
           *, list_chosen: bool = True, family: str | None = None,
           locations: Locations | None = None, home: str | os.PathLike[str] | None = None,
           chunk_tokens: int | None = None, threads: int | None = None,
           device: str | None = None, chat_model: str | os.PathLike[str] | None = None,
           chat_context: int | None = None) -> Survey:
    """Discovery, GPU detection and the fit of every model: all the slow work, at once.

    folders: where to look besides ``locations`` (None: the usual places). chosen: the model
    the person chose (None: the starter is the one in use); with list_chosen it is listed even
    when it is in none of the places looked in. family forces a profile (as --family does).
    device: the compute device setting (None: the best GPU), whose fit every verdict gives.
    chat_model, chat_context: Ask's chat model (listed like `chosen`) and its context.
    """
    gpu = detect(device=device)
    estimates_gpu = dataclasses.replace(gpu, cpu_threads=threads) if threads else gpu
    active = active_model(chosen)
    roots = [Path(f).expanduser() for f in folders]
    for extra in (chosen, chat_model) if list_chosen else ():
        if extra:
            path = Path(extra).expanduser()
            if path not in roots and path.resolve() not in roots:
                roots.append(path)
    found = discover(roots, locations=locations, home=home, family=family)
    models = [describe(m, estimates_gpu, active, chunk_tokens) for m in found]
    in_use = next((d for d in models if d.active and d.usable), None)
    chosen_chat = Path(chat_model).expanduser().resolve() if chat_model else None
    chats = [describe_chat(m, estimates_gpu, chosen_chat, chat_context, in_use)
             for m in found if m.chat is not None or m.chat_problem]
    return Survey(
        gpu=gpu, models=models, chats=chats,
        missing=[Suggestion(c, verdict(c.memory(), estimates_gpu)) for c in missing_from(found)])
