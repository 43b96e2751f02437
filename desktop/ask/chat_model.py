"""A local chat model: checked, loaded the safe way, streaming greedy tokens, cancellable.

Loaded through Semdex's own llama.cpp loader (desktop/models/llama_model.py), as the
embedders are, rather than llama-cpp-python's `Llama`, for the things `Llama` cannot do:
keeping quantized weights out of the AMX kernels that crash on Xeon CPUs (llama.cpp#20824:
SmolLM2's Q4_1 file killed a natively built llama.cpp there), naming the one device the model
goes on, leaving flash attention to llama.cpp, compiling no template before it is checked
(`Llama()` compiles every template in the file, and fails on one Jinja cannot parse:
llama-cpp-python#2225), and stopping during prompt processing, not only between tokens. The
prompt is rendered by llama-cpp-python's own `Jinja2ChatFormatter` (templates.py), so it is
the prompt `create_chat_completion` would make, and tokenized the same way (the template
writes its BOS: no second one is added).

Decoding is greedy (temperature 0): an answer from the person's documents should be the
model's most likely reading of them, the same every time.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from desktop.models import llama_log
from desktop.models.chat_template import (
    ChatTemplate,
    ChatTemplateError,
    default_context,
    read_template,
)
from desktop.models.gguf_info import ModelFileError, ModelInfo, read_model_info
from desktop.models.gpu import cpu_threads
from desktop.models.llama_model import (
    AMX_TYPES,
    LlamaModel,
    LoadParams,
    extra_bufts_safe,
    tokenize,
)

log = logging.getLogger(__name__)

PREFILL_BATCH = 512  # prompt tokens a decode (n_batch = n_ubatch)
ANSWER_TOKENS = 384  # the cap on an answer's length, unless set


class ChatCancelled(Exception):
    """Generation was stopped (the person pressed Stop, or closed the window)."""


class ChatModelError(Exception):
    """A chat model that cannot be used; the message names the file and says why."""


@dataclass(frozen=True)
class ChatSettings:
    path: str
    context: int | None = None  # tokens; None: the model's default (templates.default_context)
    answer_tokens: int = ANSWER_TOKENS
    threads: int | None = None
    gpu_layers: int | None = None  # None: what fits; -1 all; 0 none
    device: str | None = None  # as the embedder's setting


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    prefill_s: float = 0.0
    first_token_s: float | None = None  # from the start of prompt processing
    answer_tokens: int = 0
    generate_s: float = 0.0
    stopped: str = ""  # "eos", "length", "cancelled", "context"

    @property
    def tokens_per_s(self) -> float:
        return self.answer_tokens / self.generate_s if self.generate_s > 0 else 0.0


@dataclass
class _Decoder:
    """Turns tokens' bytes into text, holding back a character split across tokens."""

    pending: bytes = b""
    out: list[str] = field(default_factory=list)

    def feed(self, data: bytes) -> str:
        self.pending += data
        for cut in range(len(self.pending), max(-1, len(self.pending) - 4), -1):
            try:
                text = self.pending[:cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            self.pending = self.pending[cut:]
            return text
        return ""

    def flush(self) -> str:
        text, self.pending = self.pending.decode("utf-8", "replace"), b""
        return text


def check_chat_model(path: str | os.PathLike[str]) -> tuple[ModelInfo, ChatTemplate]:
    """The file's metadata and template, checked without loading weights; ChatModelError
    with the reason for a file that cannot answer."""
    try:
        info = read_model_info(path)
    except ModelFileError as exc:
        raise ChatModelError(str(exc)) from None
    name = Path(path).name
    if not info.tensors:
        raise ChatModelError(f"{name} holds no weights (a vocabulary-only file)")
    if not info.causal:
        raise ChatModelError(f"{name} is an encoder ({info.arch}): it cannot write text")
    if info.pooling_type not in (None, -1, 0):
        raise ChatModelError(f"{name} is an embedding model: it cannot write answers")
    try:
        template = read_template(info)
    except ChatTemplateError as exc:
        raise ChatModelError(f"{name}: {exc}") from None
    return info, template


class ChatModel:
    """A loaded chat model and its context; used by one thread at a time."""

    def __init__(self, settings: ChatSettings, *, trial: bool = True,
                 cancel: threading.Event | None = None):
        """Load the model; first, unless ``trial`` is off (the trial child itself), make sure
        the file and settings passed a trial load in a child process (chat_check), so that a
        file llama.cpp aborts on fails there, not here."""
        self.settings = settings
        self.path = Path(settings.path)
        self.info, self.template = check_chat_model(self.path)
        self.n_ctx = settings.context or default_context(self.info, self.template)
        self.load_params = self._params()
        self._lock = threading.Lock()
        self._llama = None
        if trial:
            from desktop.ask import chat_check

            chat_check.ensure_usable(self, cancel=cancel)
        self._llama = self._load()
        import llama_cpp

        self._lc = llama_cpp
        self._vocab = self._llama.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._piece = ctypes.create_string_buffer(256)
        self.last_used = time.monotonic()
        self._warm_up()

    # -- loading ---------------------------------------------------------------------------

    def _params(self) -> LoadParams:
        from desktop.models.embedder import place

        types = [t.ggml_type for t in self.info.tensors]
        extra = extra_bufts_safe(types)
        split = self.info.get("split.count")
        if isinstance(split, int) and split > 1:  # the other parts' weights are not read here
            extra = extra_bufts_safe(AMX_TYPES)
        where = place(self.info, PREFILL_BATCH, self.settings.gpu_layers, self.settings.device,
                      context_tokens=self.n_ctx)
        return LoadParams(n_ctx=self.n_ctx, n_batch=PREFILL_BATCH, n_ubatch=PREFILL_BATCH,
                          threads=self.settings.threads or cpu_threads(),
                          gpu_layers=where.gpu_layers, pooling=-1, extra_bufts=extra,
                          device=where.device, gpu_layers_why=where.why, compute=where.compute,
                          backend=where.backend, embeddings=False)

    def _load(self) -> LlamaModel:
        llama_log.install()
        llama_log.take_errors()
        params = self.load_params
        attempts = [params]
        if params.gpu_layers != 0:  # a GPU that cannot take it: the processor
            attempts.append(replace(params, gpu_layers=0, device=None))
        for attempt in attempts:
            try:
                model = LlamaModel(self.path, attempt)
            except (ValueError, RuntimeError, OSError) as exc:
                reason = llama_log.explain(llama_log.take_errors()) or str(exc)
                if attempt is attempts[-1]:
                    raise ChatModelError(f"{self.path.name}: llama.cpp could not load it: "
                                         f"{reason}") from exc
                log.warning("%s: could not be loaded on %s (%s); on the processor instead",
                            self.path.name, attempt.compute, reason)
                continue
            self.load_params = attempt
            log.info("chat model %s loaded: context %d, %s, GPU layers %s", self.path.name,
                     self.n_ctx, attempt.compute or "CPU", attempt.gpu_layers_why)
            return model
        raise AssertionError("unreachable")

    def _warm_up(self) -> None:
        """One decode, so the first answer does not pay for the first allocations."""
        tokens = self.tokenize("Hello")[:1] or [self._llama.token_eos()]
        with self._lock:
            self._llama.ctx.kv_cache_clear()
            batch = self._llama.batch
            batch.set_batch(tokens, 0, False)
            self._llama.ctx.decode(batch)
            self._llama.ctx.kv_cache_clear()

    def close(self) -> None:
        llama, self._llama = getattr(self, "_llama", None), None
        if llama is not None:
            llama.close()

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    # -- tokens ----------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Tokens of rendered template text: special tokens read as such, no BOS added (the
        template writes its own)."""
        return tokenize(self._vocab, text, add_special=False, parse_special=True)

    def count(self, text: str) -> int:
        """Tokens of plain text (a passage, a question) inside a prompt."""
        return len(tokenize(self._vocab, text, add_special=False))

    def prompt_tokens(self, user_message: str) -> list[int]:
        return self.tokenize(self.template.render(user_message))

    # -- generation ------------------------------------------------------------------------

    def generate(self, tokens: list[int], max_tokens: int | None = None,
                 cancel: threading.Event | None = None,
                 stats: GenerationStats | None = None) -> Iterator[str]:
        """Stream the answer's text for a prompt's tokens, greedily, until the end-of-turn
        token, max_tokens, or the context is full. `cancel` is checked during prompt
        processing (between chunks, and inside a decode through llama.cpp's abort callback)
        and before every token: ChatCancelled."""
        stats = stats if stats is not None else GenerationStats()
        max_tokens = max_tokens or self.settings.answer_tokens
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"the prompt has {len(tokens)} tokens; the context holds "
                             f"{self.n_ctx}")
        cancel = cancel or threading.Event()
        lc, llama = self._lc, self._llama
        with self._lock:
            self.last_used = time.monotonic()
            ctx = llama.ctx
            abort = lc.ggml_abort_callback(lambda _data: bool(cancel.is_set()))
            lc.llama_set_abort_callback(ctx.ctx, abort, None)
            try:
                yield from self._run(tokens, max_tokens, cancel, stats)
            finally:
                lc.llama_set_abort_callback(ctx.ctx, lc.ggml_abort_callback(0), None)
                ctx.kv_cache_clear()
                self.last_used = time.monotonic()

    def _run(self, tokens: list[int], max_tokens: int, cancel: threading.Event,
             stats: GenerationStats) -> Iterator[str]:
        lc, llama = self._lc, self._llama
        ctx, batch = llama.ctx, llama.batch
        ctx.kv_cache_clear()
        t0 = time.perf_counter()
        stats.prompt_tokens = len(tokens)
        for start in range(0, len(tokens), PREFILL_BATCH):
            if cancel.is_set():
                stats.stopped = "cancelled"
                raise ChatCancelled
            chunk = tokens[start:start + PREFILL_BATCH]
            batch.set_batch(chunk, start, False)
            try:
                ctx.decode(batch)
            except RuntimeError:
                if cancel.is_set():  # llama_decode returned 2: aborted by the callback
                    stats.stopped = "cancelled"
                    raise ChatCancelled from None
                raise
        stats.prefill_s = time.perf_counter() - t0
        decoder = _Decoder()
        n_past = len(tokens)
        t1 = time.perf_counter()
        while True:
            if cancel.is_set():
                stats.stopped = "cancelled"
                raise ChatCancelled
            logits = lc.llama_get_logits_ith(ctx.ctx, -1)
            row = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
            token = int(row.argmax())
            if lc.llama_vocab_is_eog(self._vocab, token):
                stats.stopped = "eos"
                break
            text = decoder.feed(self._piece_of(token))
            stats.answer_tokens += 1
            if stats.first_token_s is None:
                stats.first_token_s = time.perf_counter() - t0
            if text:
                yield text
            if stats.answer_tokens >= max_tokens:
                stats.stopped = "length"
                break
            if n_past + 1 >= self.n_ctx:
                stats.stopped = "context"
                break
            batch.set_batch([token], n_past, False)
            n_past += 1
            try:
                ctx.decode(batch)
            except RuntimeError:
                if cancel.is_set():
                    stats.stopped = "cancelled"
                    raise ChatCancelled from None
                raise
        tail = decoder.flush()
        if tail:
            yield tail
        stats.generate_s = time.perf_counter() - t1

    def _piece_of(self, token: int) -> bytes:
        n = self._lc.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0,
                                          False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            return buf.raw[:n]
        return self._piece.raw[:n]
