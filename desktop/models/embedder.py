"""Embed passages and queries with a GGUF model through llama-cpp-python.

Everything that could make llama.cpp abort the process is checked before it is called: the
file is parsed and validated first (gguf_info), no sequence is ever longer than the physical
batch, and for encoders n_batch == n_ubatch. Passages arrive already tokenized (chunking did
it, proving they fit), so they go straight into llama_decode: no second tokenization, no silent
truncation that would cut off the EOS, EOS added by id exactly once for the decoder families.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from desktop.models import llama_log
from desktop.models.gguf_info import (
    ModelFileError,
    ModelInfo,
    as_int,
    other_parts,
    read_model_info,
    split_position,
)
from desktop.models.gpu import GpuInfo, detect
from desktop.models.gpu import cpu_threads as default_threads
from desktop.models.llama_model import (
    AMX_TYPES,
    LlamaModel,
    LoadParams,
    VocabModel,
    extra_bufts_safe,
    gpu_offload_supported,
    tokenize,
)
from desktop.models.memory import assess, semdex_batch_tokens
from desktop.models.profiles import Profile, detect_profile
from desktop.models.units import GiB

log = logging.getLogger(__name__)

GPU_READING_SECONDS = 10.0  # one reading of free GPU memory serves a trial load and the load


class Cancelled(Exception):
    """Embedding was stopped between two decodes because its cancel event was set."""


@dataclass(frozen=True)
class EmbedderSettings:
    family: str | None = None  # override the recognised family
    chunk_tokens: int | None = None  # passage length; default: the family's
    threads: int | None = None
    gpu_layers: int | None = None  # None: what fits the GPU (auto_gpu_layers); -1 all; 0 none
    # llama.cpp's extra CPU buffer types (AMX, repack); None: on, except where they would put
    # quantized weights into the AMX kernels that crash (llama_model.extra_bufts_safe)
    extra_bufts: bool | None = None
    # an OpenAI-compatible embedding server (desktop/models/remote.py); None: this machine
    embed_url: str | None = None
    # the ggml device to offload to ("Vulkan0", "CUDA1"); "cpu": none; None: the best GPU
    device: str | None = None


def index_key(name: str, quant: str | None, family: str, dims: int) -> str:
    """A name the store can use for a table: lower-case letters, digits and underscores."""
    raw = f"{name}-{quant or ''}-{family}-{dims}".lower()
    return re.sub(r"[^a-z0-9]+", "_", raw).strip("_")[:120]


def model_key(info: ModelInfo, profile: Profile, dims: int | None = None) -> str:
    """The index a model's vectors live in; known from metadata alone, before loading."""
    dims = dims or info.embedding_length or 0
    ident = f"{info.file_size}:{len(info.tensors)}:{info.arch}"
    tag = hashlib.blake2b(ident.encode(), digest_size=3).hexdigest()
    # index_key cuts its result at 120 characters: a long general.name must not push the
    # family and dims out of the key (two families of one file would share an index).
    return f"{index_key(info.name[:64], info.quantization, profile.family, dims)}_{tag}"


# -- GPU layers -------------------------------------------------------------------------------


def auto_gpu_layers(info: ModelInfo, batch_tokens: int, gpu: GpuInfo,
                    extra_weight_bytes: int = 0, context_tokens: int | None = None
                    ) -> tuple[int, str]:
    """What "Automatic (what fits)" loads with on this GPU, and why (for the log): the fit
    verdict's n_gpu_layers, -1 (all) when the model fits, N for a partial offload, 0 for the
    processor alone (no usable GPU, or too little free memory for even one layer).

    One exception: a GPU build whose device list could not be read (gpu.choice empty), where
    llama.cpp offloads to whatever it finds. What fits is unknown there, so all layers, as
    llama.cpp itself would, rather than leave the GPU the person has unused."""
    if gpu.kind == "none" and gpu.offload_supported and not gpu.choice:
        return -1, ("all: this llama.cpp build has a GPU whose memory Semdex cannot read, so "
                    "what fits is unknown")
    est, v = assess(info, gpu, batch_tokens, extra_weight_bytes, context_tokens)
    count = {"gpu": f"all {v.layers_total}",
             "partial": f"{v.gpu_layers} of {v.layers_total}"}.get(v.placement, "0")
    if gpu.kind == "none":
        where = gpu.choice or "no GPU found"
    else:
        where = (f"{gpu.backend + ': ' if gpu.backend else ''}{gpu.name}: "
                 f"{gpu.free_bytes / GiB:.1f} GiB free, all layers need about "
                 f"{est.gpu_bytes(gpu.kind) / GiB:.1f} GiB")
    return v.gpu_layers, f"{count}: {v.summary}; {where}"


_gpu_reading: dict[str | None, tuple[float, GpuInfo]] = {}
_gpu_reading_lock = threading.Lock()


def gpu_now(device: str | None = None) -> GpuInfo:
    """The GPU (the one set, or the best) and its free memory, read again after
    GPU_READING_SECONDS: the trial load's record key and the load that follows it then decide
    alike. Only asked once the build is known to offload (gpu_offload_supported)."""
    with _gpu_reading_lock:
        now = time.monotonic()
        seen = _gpu_reading.get(device)
        if seen is None or now - seen[0] > GPU_READING_SECONDS:
            seen = _gpu_reading[device] = (now, replace(detect(device=device),
                                                        offload_supported=True))
        return seen[1]


def forget_gpu_reading() -> None:
    """Read the GPU again at the next load (after a load ran out of its memory)."""
    with _gpu_reading_lock:
        _gpu_reading.clear()


def _other_parts_bytes(info: ModelInfo) -> int:
    """The bytes of a split model's parts 2..N beside part 1 (they hold weights too)."""
    count = as_int(info.get("split.count")) or 1
    if count < 2 or split_position(info.path) is None:
        return 0
    return other_parts(info.path, count)[0]


@dataclass(frozen=True)
class Placement:
    """Where a model's layers go: n_gpu_layers, the ggml device (None: the processor, or
    llama.cpp's own choice when its devices could not be read), and why, in words."""

    gpu_layers: int
    device: str | None
    why: str
    compute: str  # "Vulkan: NVIDIA GeForce RTX 4090 (Vulkan0)", "CPU: no GPU found"
    backend: str = "CPU"


def place(info: ModelInfo, batch_tokens: int, requested: int | None,
          device: str | None = None, gpu: GpuInfo | None = None,
          context_tokens: int | None = None) -> Placement:
    """The layers to offload and the device, from the settings (requested: None automatic,
    -1 all, 0 none, N; device: a ggml device name, "cpu", or None for the best GPU) and the
    machine (read now when gpu is None, and only if the build offloads). context_tokens: a
    chat model's context (its KV cache), beyond the batch."""
    head = "automatic, 0" if requested is None else f"{requested}, as set, but 0"
    if gpu is None:
        if not gpu_offload_supported():
            return Placement(0, None, f"{head}: this llama.cpp build cannot offload to a GPU",
                             "CPU: no GPU backend in this build")
        gpu = gpu_now(device)
    if gpu.kind == "none" and gpu.choice:  # the processor: none found, or set so
        return Placement(0, None, f"{head}: {gpu.choice}", gpu.choice)
    compute = gpu.choice or (f"{gpu.name}" if gpu.kind != "none" else "llama.cpp's choice")
    if requested is not None:
        n = requested
        why = f"{'all' if requested < 0 else requested}, as set"
    else:
        n, auto_why = auto_gpu_layers(info, batch_tokens, gpu, _other_parts_bytes(info),
                                      context_tokens)
        why = f"automatic, {auto_why}"
    if n == 0:
        return Placement(0, None, why, f"CPU: the model does not fit {gpu.name}")
    return Placement(n, gpu.device or None, why, compute, gpu.backend or "GPU")


def resolve_gpu_layers(info: ModelInfo, batch_tokens: int, requested: int | None,
                       gpu: GpuInfo | None = None) -> tuple[int, str]:
    """The n_gpu_layers to load with, and why (place(), without the device)."""
    p = place(info, batch_tokens, requested, gpu=gpu)
    return p.gpu_layers, p.why


def load_params(info: ModelInfo, profile: Profile, settings: EmbedderSettings) -> LoadParams:
    """What llama.cpp is given for this file and these settings; known before loading, so the
    safe first load (model_check) runs the child with exactly what the app will use."""
    batch = semdex_batch_tokens(profile.max_tokens, settings.chunk_tokens, profile.default_chunk)
    where = place(info, batch, settings.gpu_layers, settings.device)
    extra = settings.extra_bufts
    if extra is None:
        extra = extra_bufts_safe(t.ggml_type for t in info.tensors)
        split = info.get("split.count")
        if isinstance(split, int) and split > 1:  # the other parts' weights are not read here
            extra = extra_bufts_safe(AMX_TYPES)
    return LoadParams(n_ctx=batch, n_batch=batch, n_ubatch=batch,
                      threads=settings.threads or default_threads(),
                      gpu_layers=where.gpu_layers, pooling=profile.pooling, extra_bufts=extra,
                      device=where.device, gpu_layers_why=where.why, compute=where.compute,
                      backend=where.backend)


_OOM = re.compile(r"out of (device )?memory|outofdevicememory|unable to allocate|failed to "
                  r"allocate|alloc\w* failed|cudaMalloc|insufficient memory", re.I)


def out_of_memory(reason: str) -> bool:
    """Whether a load failure reads as the GPU's memory running out."""
    return bool(_OOM.search(reason))


def fallback_plan(params: LoadParams, layers_total: int) -> list[LoadParams]:
    """The loads to try in turn: as decided, then half the layers on the GPU, then none."""
    plan = [params]
    if params.gpu_layers == 0:
        return plan
    on_gpu = layers_total if params.gpu_layers < 0 else min(params.gpu_layers, layers_total)
    if on_gpu // 2 >= 1:
        plan.append(replace(params, gpu_layers=on_gpu // 2))
    plan.append(replace(params, gpu_layers=0, device=None))
    return plan


class Embedder:
    """A loaded model with its family's rules; owned by one thread (the indexing worker)."""

    def __init__(self, model_path: str | os.PathLike[str],
                 settings: EmbedderSettings | None = None):
        settings = settings or EmbedderSettings()
        self.path = Path(model_path)
        self.info: ModelInfo = read_model_info(self.path)
        self.profile: Profile = detect_profile(self.info, settings.family)
        max_tokens = self.profile.max_tokens
        chunk = settings.chunk_tokens or self.profile.default_chunk
        if not 16 <= chunk <= max_tokens:
            raise ValueError(
                f"passage length {chunk} is outside what {self.info.name} takes (16-{max_tokens})")
        self.chunk_tokens = chunk
        # Passages are packed into decodes of at most `chunk` tokens: sequences packed together
        # attend over the whole batch (masked, but computed), so a bigger pack is wasted work.
        # The physical batch is at least 512 so that a long query is not cut short; a decode
        # costs what its tokens cost, not what the batch could hold.
        self.pack_tokens = chunk
        self.batch_tokens = semdex_batch_tokens(max_tokens, chunk)
        self._open(settings)
        self._eos = self._resolve_eos()
        self._lock = threading.Lock()
        self._turn = threading.Condition()
        self._urgent = 0  # queries waiting for, or in, a decode
        self._held = 0  # answers being written (yielding()): indexing waits between decodes

    def _open(self, settings: EmbedderSettings) -> None:
        """Load the weights and make the context that decodes (a remote embedder, which
        decodes elsewhere, loads the tokenizer alone)."""
        import llama_cpp

        self.load_params = load_params(self.info, self.profile, settings)
        log.info("%s: GPU layers %s", self.path.name, self.load_params.gpu_layers_why)
        if settings.extra_bufts is None and not self.load_params.extra_bufts:
            log.info("%s: weights the AMX kernels would take, on a llama.cpp build that has "
                     "them: loaded without the extra CPU buffer types (llama.cpp#20824)",
                     self.path.name)
        self._llama = self._load_or_fall_back()
        self._ctx = self._llama.ctx
        self._vocab = self._llama.vocab
        self.dims = self._llama.n_embd()
        # Sequences per decode: llama.cpp refuses a batch with more (llama_decode -> -1).
        self._max_seqs = max(1, int(llama_cpp.llama_n_seq_max(self._ctx.ctx)))

    @property
    def where(self) -> str:
        """Where the vectors are computed, in words (status, the log)."""
        return "this machine"

    @functools.cached_property
    def key(self) -> str:
        """The index this model's vectors live in."""
        return model_key(self.info, self.profile)

    # -- loading -----------------------------------------------------------------------------

    def _load(self, params: LoadParams | None) -> LlamaModel | VocabModel:
        """The model (its tokenizer alone when params is None)."""
        llama_log.install()
        llama_log.take_errors()
        try:
            return LlamaModel(self.path, params) if params else VocabModel(self.path)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = llama_log.explain(llama_log.take_errors()) or str(exc)
            raise ModelFileError(self.path, f"llama.cpp could not load it: {reason}") from exc

    def _load_or_fall_back(self) -> LlamaModel:
        """Load with the placement decided; where the GPU cannot take it (out of its memory,
        or a backend that fails on this model), with half the layers on it, then on the
        processor alone: slower, never a crash. What happened is kept in fallback_note."""
        self.fallback_note = ""
        params = self.load_params
        first_error: ModelFileError | None = None
        for attempt in fallback_plan(params, self.info.block_count or 0):
            try:
                model = self._load(attempt)
            except ModelFileError as exc:
                if attempt.gpu_layers == 0:
                    raise  # not the GPU's doing: the processor cannot load it either
                first_error = first_error or exc
                log.warning("%s: could not be loaded with %s GPU layers on %s (%s)",
                            self.path.name, attempt.gpu_layers if attempt.gpu_layers >= 0
                            else "all", attempt.device or "the GPU", exc.reason)
                forget_gpu_reading()
                continue
            if attempt is not params:
                why = ("ran out of GPU memory" if first_error and out_of_memory(
                    first_error.reason) else "could not run on the GPU")
                self.fallback_note = (
                    f"{self.info.name} {why} ({params.compute}); it runs "
                    + (f"with {attempt.gpu_layers} layers on the GPU" if attempt.gpu_layers
                       else "on the processor") + ", more slowly")
                log.warning("%s: %s", self.path.name, self.fallback_note)
                self.load_params = replace(
                    attempt, gpu_layers_why=self.fallback_note,
                    compute=params.compute if attempt.gpu_layers else f"CPU: the model {why}",
                    backend=params.backend if attempt.gpu_layers else "CPU")
            return model
        raise first_error or ModelFileError(self.path, "it could not be loaded")

    def _resolve_eos(self) -> int | None:
        if not self.profile.ensure_eos:
            return None
        if self.profile.eos_text:
            ids = self._tokenize(self.profile.eos_text, add_special=False, parse_special=True)
            if len(ids) == 1:
                return ids[0]
        eos = self._llama.token_eos()
        if eos < 0:
            raise ModelFileError(self.path, "the model has no end-of-sequence token")
        return eos

    def close(self) -> None:
        llama, self._llama = getattr(self, "_llama", None), None
        if llama is not None:
            llama.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens ------------------------------------------------------------------------------

    def _tokenize(self, text: str, *, add_special: bool, parse_special: bool = False
                  ) -> list[int]:
        return tokenize(self._vocab, text, add_special=add_special, parse_special=parse_special)

    def count(self, text: str) -> int:
        """Tokens of a piece of text alone (chunking packs these)."""
        return len(self._tokenize(text, add_special=False))

    def encode_document(self, text: str) -> list[int]:
        return self._finish(self._tokenize(self.profile.format_document(text), add_special=True))

    def encode_query(self, query: str, task: str | None = None,
                     instruction: str | None = None) -> list[int]:
        text = self.profile.format_query(query, task, instruction)
        tokens = self._finish(self._tokenize(text, add_special=True))
        if len(tokens) > self.batch_tokens:  # a pasted page as a query: keep its start
            tail = tokens[-1:] if (self._eos is not None or self._ends_with_sep(tokens)) else []
            tokens = tokens[: self.batch_tokens - len(tail)] + tail
        return tokens

    def _ends_with_sep(self, tokens: list[int]) -> bool:
        return bool(tokens) and tokens[-1] == self._llama.token_eos()

    def _finish(self, tokens: list[int]) -> list[int]:
        """Decoder embedders read the last position: it must be EOS, exactly once."""
        if self._eos is not None and (not tokens or tokens[-1] != self._eos):
            tokens.append(self._eos)
        return tokens

    # -- embedding ---------------------------------------------------------------------------

    def embed_tokens(self, sequences: Sequence[Sequence[int]], *,
                     cancel: threading.Event | None = None, urgent: bool = False) -> np.ndarray:
        """L2-normalised vectors, one per token sequence, in order.

        The model is shared by the indexing thread and searches: an `urgent` call (a query)
        goes before the next decode of a non-urgent one, so a search waits for one decode at
        most, never for a whole indexing batch. `cancel` stops a long call between two
        decodes (Cancelled), which is what makes pausing indexing quick on a slow CPU.
        """
        out = np.empty((len(sequences), self.dims), dtype=np.float32)
        row = 0
        for batch in self._batches(sequences):
            if urgent:
                with self._turn:
                    self._urgent += 1
                try:
                    vectors = self._decode(batch)
                finally:
                    with self._turn:
                        self._urgent -= 1
                        self._turn.notify_all()
            else:
                with self._turn:  # a waiting query goes first (bounded, in case of a bug)
                    self._turn.wait_for(lambda: not self._urgent, timeout=10.0)
                    while self._held and not (cancel is not None and cancel.is_set()):
                        self._turn.wait(0.5)  # an answer is being written: it goes first
                if cancel is not None and cancel.is_set():
                    raise Cancelled
                vectors = self._decode(batch)
            out[row:row + len(batch)] = vectors
            row += len(batch)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    @contextlib.contextmanager
    def yielding(self) -> Iterator[None]:
        """While this lasts (a chat model writing an answer), indexing waits between two
        decodes and leaves the processor to the answer; queries still run."""
        with self._turn:
            self._held += 1
        try:
            yield
        finally:
            with self._turn:
                self._held -= 1
                self._turn.notify_all()

    def embed_queries(self, queries: Sequence[str], task: str | None = None,
                      instruction: str | None = None) -> np.ndarray:
        return self.embed_tokens([self.encode_query(q, task, instruction) for q in queries],
                                 urgent=True)

    def _batches(self, sequences: Sequence[Sequence[int]]) -> Iterator[list[Sequence[int]]]:
        limit = self.batch_tokens
        batch: list[Sequence[int]] = []
        used = 0
        for seq in sequences:
            n = len(seq)
            if n == 0 or n > limit:
                raise ValueError(f"a sequence of {n} tokens does not fit a batch of {limit}")
            if batch and (used + n > self.pack_tokens or len(batch) >= self._max_seqs):
                yield batch
                batch, used = [], 0
            batch.append(seq)
            used += n
        if batch:
            yield batch

    def _decode(self, batch: list[Sequence[int]]) -> np.ndarray:
        import llama_cpp

        with self._lock:
            lb = self._llama.batch
            lb.reset()
            for seq_id, seq in enumerate(batch):
                lb.add_sequence(seq, seq_id, True)
            self._ctx.kv_cache_clear()
            self._ctx.decode(lb)
            lb.reset()
            vectors = np.empty((len(batch), self.dims), dtype=np.float32)
            ctx = self._ctx.ctx
            for seq_id in range(len(batch)):
                ptr = llama_cpp.llama_get_embeddings_seq(ctx, seq_id)
                if not ptr:
                    raise RuntimeError("llama.cpp returned no pooled embedding")
                vectors[seq_id] = np.ctypeslib.as_array(
                    ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.dims,))
            return vectors
