"""How much memory a model needs with Semdex's settings, and where it will run: from metadata only.

The model picker must tell the person, before a 5 GB file is loaded, whether it will fit on
their GPU, fit only in part, or run on the processor, and roughly how fast it will index. Every
figure comes from the GGUF header (gguf_info reads it in milliseconds):

* weights: the tensors' byte sizes (a split model: all its parts);
* KV cache, causal models only: 2 (K and V) * n_layer * n_ctx * n_head_kv * head_dim * 2 bytes
  (f16); encoders such as BERT keep none;
* compute buffer, with flash attention (llama.cpp's default; on a GPU without a kernel for the
  head size, plus the attention scores, 4 * n_ubatch * n_ctx * n_head bytes): the larger of
  the mask (4 * n_ubatch * n_ctx) and the FFN activations (4 * n_ubatch * n_ff, twice for
  gated FFNs), plus hidden-state activations and, for decoders, the LM head's logits
  (llama.cpp computes them even when only embeddings are wanted);
* output buffer: (n_vocab + n_embd) floats for each sequence of a batch (n_seq_max = 256);
* on a GPU, a few hundred MB for the backend itself (CUDA context, cuBLAS workspace).

Semdex loads every model with n_ctx = n_batch = n_ubatch = batch_tokens (embedder.py), so those
are the only settings that matter. ``measure_buffers`` asks llama.cpp itself in a subprocess
(its no_alloc mode plans every buffer without allocating one, so even a 7B shape costs well under
a second and 100 MB); the tests hold the estimate to those numbers. With llama.cpp 0.3.36 on the
CPU, KV and output buffers match exactly and the compute buffer comes out at 0.96x (starter),
1.31x (tiny LLaMA) and 1.29x (E5-Mistral-7B shape) of what llama.cpp plans (flash attention
on, as Semdex loads models).

Speed: tokens per second from the work per token (2 FLOPs per active weight plus attention),
calibrated on the starter model (all-MiniLM-L6-v2, F16): about 4,200 tokens/s on 2 threads of
this project's reference machine, scaled by threads. GPU figures assume a mid-range card; both
are classes (fast / good / slow / very slow), good to a factor of about two, not promises.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.frozen import child_command
from desktop.models.gguf_info import ENCODER_ARCHS, ModelInfo, _tensor_nbytes, as_int
from desktop.models.gpu import GpuInfo
from desktop.models.units import GiB, MiB, rate_text

# The physical batch is never smaller (unless the model takes fewer tokens), so that a query of
# this many tokens is embedded in full: n_ctx = n_batch = n_ubatch = 512 for most models.
MIN_BATCH_TOKENS = 512
MAX_PARALLEL_SEQUENCES = 256  # llama_max_parallel_sequences(); llama-cpp-python caps n_seq_max

GPU_OVERHEAD = {"cuda": 400 * MiB, "metal": 256 * MiB, "vulkan": 300 * MiB}  # context, workspaces
# head sizes every GPU backend has a flash-attention kernel for (CUDA, Vulkan, Metal); others
# (the starter's 32) get the whole score matrix there
FLASH_ATTN_HEAD_SIZES = frozenset({64, 80, 96, 112, 128, 256})
CPU_OVERHEAD = 64 * MiB  # graph metadata, tokenizer, Python-side buffers
GPU_HEADROOM_MIN = 256 * MiB  # never plan to fill the card to the last byte
GPU_HEADROOM_SHARE = 0.05

# Speed calibration: all-MiniLM-L6-v2 F16, ~190-token passages, ubatch 256, 2 threads, flash
# attention (bench/cpu_speed.py: 4,100 to 4,400 tokens/s; without flash attention, 2,200)
REF_CPU_TOKENS_PER_S = 4200.0
REF_CPU_THREADS = 2
REF_ACTIVE_PARAMS = 10_646_784  # its weights except the token/position embedding tables
REF_LAYERS, REF_EMBD, REF_SEQ = 6, 384, 210
GPU_FLOPS = {"cuda": 30e12, "metal": 8e12}  # effective prompt-processing rate, mid-range cards
GPU_UBATCH_SECONDS = 0.005  # fixed cost of one decode (launches, copies, pooling) ...
GPU_LAYER_SECONDS = 0.0003  # ... and of each layer in it: small models are latency-bound
PCIE_BYTES_PER_S = 12e9  # partial offload: CPU layers' weights cross the bus once per ubatch
TOKENS_PER_PAGE = 500

SPEED_CLASSES = ((2000.0, "fast"), (500.0, "good"), (100.0, "slow"), (0.0, "very slow"))


def _first_int(value: Any) -> int | None:
    """A hyperparameter that may be stored per layer (an array): its largest value."""
    if isinstance(value, list):
        ints = [n for n in map(as_int, value) if n is not None]
        return max(ints) if ints else None
    return as_int(value)


@dataclass(frozen=True)
class ModelShape:
    """The numbers the estimate needs, from a file's header or typed in (catalogue entries)."""

    arch: str
    causal: bool
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    head_dim: int = 0  # key/value head size; 0: n_embd / n_head
    gated_ffn: bool = True  # LLaMA-style gate+up (bert: up only)
    weights_bytes: int = 0
    input_bytes: int = 0  # token embedding table: stays on the CPU when offloading
    output_bytes: int = 0  # LM head (or the tied embedding, loaded a second time)
    layer_bytes: tuple[int, ...] = ()  # per repeating layer
    active_params: int = 0  # weights touched per token (all but the lookup tables)
    tied_output: bool = False  # the LM head is the token table, loaded a second time

    @property
    def head_size(self) -> int:
        return self.head_dim or self.n_embd // max(self.n_head, 1)

    @property
    def avg_layer_bytes(self) -> int:
        if self.layer_bytes:
            return sum(self.layer_bytes) // len(self.layer_bytes)
        rest = self.weights_bytes - self.input_bytes - self.output_bytes
        return max(rest, 0) // max(self.n_layer, 1)


@dataclass(frozen=True)
class Hyperparameters:
    """A model's published architecture, for estimates without its file (the catalogue)."""

    n_layer: int
    n_embd: int
    n_head: int
    n_ff: int
    n_vocab: int
    arch: str = "llama"
    n_head_kv: int = 0  # 0: n_head (no grouped-query attention)
    head_dim: int = 0  # 0: n_embd / n_head
    causal: bool = True
    tied: bool = False  # the LM head is the token table (loaded a second time)
    gated_ffn: bool | None = None  # None: as causal (LLaMA-style gate+up; bert: up only)

    def shape(self, weights_bytes: int) -> ModelShape:
        """The shape of a file of this size: its bytes shared out by parameter count."""
        n_head_kv = self.n_head_kv or self.n_head
        gated = self.causal if self.gated_ffn is None else self.gated_ffn
        n_embd, n_ff = self.n_embd, self.n_ff
        hd = self.head_dim or n_embd // self.n_head
        per_layer = (n_embd * self.n_head * hd * 2 + 2 * n_embd * n_head_kv * hd
                     + n_embd * n_ff * (3 if gated else 2))
        embed = self.n_vocab * n_embd
        head = embed if self.causal else 0
        total = per_layer * self.n_layer + embed + (0 if self.tied else head)
        bpp = weights_bytes / max(total, 1)  # bytes per parameter of this quantisation
        return ModelShape(
            arch=self.arch, causal=self.causal, n_layer=self.n_layer, n_embd=n_embd,
            n_head=self.n_head, n_head_kv=n_head_kv, n_ff=n_ff, n_vocab=self.n_vocab,
            head_dim=self.head_dim, gated_ffn=gated, weights_bytes=weights_bytes,
            input_bytes=int(embed * bpp), output_bytes=int(head * bpp),
            layer_bytes=(int(per_layer * bpp),) * self.n_layer,
            active_params=per_layer * self.n_layer + head,
            tied_output=self.tied and self.causal)


def model_shape(info: ModelInfo, extra_weight_bytes: int = 0) -> ModelShape:
    """Read the shape from a parsed header. extra_weight_bytes: other parts of a split model."""
    n_embd = info.embedding_length or 0
    n_layer = info.block_count or 0
    n_head = _first_int(info.arch_get("attention.head_count")) or 1
    n_head_kv = _first_int(info.arch_get("attention.head_count_kv")) or n_head
    n_ff = _first_int(info.arch_get("feed_forward_length")) or 4 * n_embd
    head_dim = _first_int(info.arch_get("attention.key_length")) or 0
    n_vocab = info.vocab_size or _first_int(info.arch_get("vocab_size")) or 0
    causal = info.causal and info.arch not in ENCODER_ARCHS
    layers: dict[int, int] = {}
    weights = input_b = output_b = active = 0
    has_output = False
    gated = False
    for t in info.tensors:
        nbytes = _tensor_nbytes(t.ggml_type, t.shape) or 0
        n = math.prod(t.shape)
        weights += nbytes
        if t.name == "token_embd.weight":
            input_b = nbytes
            if not n_vocab and len(t.shape) == 2:
                n_vocab = int(t.shape[1])
            continue
        if t.name in ("position_embd.weight", "token_types.weight"):
            continue
        active += n
        if t.name.startswith("output.") or t.name == "output_norm.weight":
            if t.name == "output.weight":
                has_output = True
            output_b += nbytes
            continue
        m = re.match(r"blk\.(\d+)\.", t.name)
        if m:
            layers[int(m.group(1))] = layers.get(int(m.group(1)), 0) + nbytes
            if ".ffn_gate" in t.name:
                gated = True
    tied = causal and not has_output and input_b > 0
    if tied:
        output_b += input_b  # tied embeddings: llama.cpp loads the table again as the LM head
        active += n_vocab * n_embd
    if not weights:
        weights = info.file_size
    layer_bytes = tuple(layers[i] for i in sorted(layers))
    return ModelShape(
        arch=info.arch, causal=causal, n_layer=n_layer or len(layer_bytes), n_embd=n_embd,
        n_head=n_head, n_head_kv=n_head_kv, n_ff=n_ff, n_vocab=n_vocab, head_dim=head_dim,
        gated_ffn=gated, weights_bytes=weights + extra_weight_bytes, input_bytes=input_b,
        output_bytes=output_b, layer_bytes=layer_bytes, active_params=active, tied_output=tied)


@dataclass(frozen=True)
class MemoryEstimate:
    """What llama.cpp will allocate for one Semdex embedder (bytes)."""

    shape: ModelShape
    batch_tokens: int
    n_seq_max: int
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    output_bytes: int

    @property
    def kv_per_layer(self) -> int:
        return self.kv_bytes // max(self.shape.n_layer, 1)

    @property
    def buffers_bytes(self) -> int:
        """Everything but the weights: what the settings (not the file) cost."""
        return self.kv_bytes + self.compute_bytes + self.output_bytes

    @property
    def cpu_bytes(self) -> int:
        """RAM for running on the CPU alone (weights are memory-mapped, but all are touched)."""
        return self.weights_bytes + self.buffers_bytes + CPU_OVERHEAD

    @property
    def scores_bytes(self) -> int:
        """The attention scores as a whole matrix: what a backend without a flash-attention
        kernel for this head size computes instead (llama.cpp's automatic choice)."""
        return 4 * self.batch_tokens * self.batch_tokens * self.shape.n_head

    def gpu_bytes(self, kind: str = "cuda") -> int:
        """GPU memory for offloading every layer (the token table stays in RAM)."""
        shape = self.shape
        weights = shape.weights_bytes - shape.input_bytes
        if shape.tied_output:
            weights += shape.input_bytes
        compute = self.compute_bytes
        if shape.head_size not in FLASH_ATTN_HEAD_SIZES:
            compute += self.scores_bytes
        return weights + self.kv_bytes + compute + GPU_OVERHEAD.get(kind, 400 * MiB)

    def to_dict(self) -> dict[str, Any]:
        return {"batch_tokens": self.batch_tokens, "weights_bytes": self.weights_bytes,
                "kv_bytes": self.kv_bytes, "compute_bytes": self.compute_bytes,
                "output_bytes": self.output_bytes, "cpu_bytes": self.cpu_bytes,
                "gpu_bytes": self.gpu_bytes()}


def estimate(model: ModelInfo | ModelShape, batch_tokens: int = MIN_BATCH_TOKENS,
             extra_weight_bytes: int = 0, context_tokens: int | None = None) -> MemoryEstimate:
    """Memory for Semdex's settings: an embedder's n_ctx = n_batch = n_ubatch = batch_tokens;
    a chat model's n_ubatch = batch_tokens with a context of context_tokens (its KV cache:
    128 KiB a token for Mistral 7B) and one sequence."""
    shape = model if isinstance(model, ModelShape) else model_shape(model, extra_weight_bytes)
    u = max(int(batch_tokens), 1)
    ctx = max(int(context_tokens or u), u)
    n_seq = 1 if context_tokens else min(u, MAX_PARALLEL_SEQUENCES)
    kv = 0
    if shape.causal:
        kv = 2 * shape.n_layer * ctx * shape.n_head_kv * shape.head_size * 2
    # with flash attention (llama.cpp's default, Semdex's too) the attention scores are never
    # a whole matrix: only the mask is, beside the FFN's activations
    mask = 4 * u * ctx
    ffn = 4 * u * shape.n_ff * (2 if shape.gated_ffn else 1)
    hidden = 4 * u * shape.n_embd * 4
    logits = 4 * u * shape.n_vocab if shape.causal else 0
    compute = max(mask, ffn) + hidden + logits
    output = 4 * n_seq * (shape.n_vocab + shape.n_embd)
    return MemoryEstimate(shape=shape, batch_tokens=u, n_seq_max=n_seq,
                          weights_bytes=shape.weights_bytes, kv_bytes=kv, compute_bytes=compute,
                          output_bytes=output)


# -- verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Where the model runs on this machine, and how fast it will index."""

    placement: str  # "gpu", "partial", "cpu" or "too_big"
    gpu_layers: int  # the n_gpu_layers to load with: -1 all, N, or 0
    layers_total: int
    needed_bytes: int  # on the GPU for gpu/partial, RAM for cpu/too_big
    available_bytes: int
    tokens_per_s: float
    summary: str
    note: str = ""

    @property
    def speed(self) -> str:
        return speed_class(self.tokens_per_s)

    @property
    def pages_per_minute(self) -> float:
        return self.tokens_per_s * 60 / TOKENS_PER_PAGE

    def describe(self) -> str:
        text = f"{self.summary}; {self.speed}, about {rate_text(self.tokens_per_s)} tokens/s"
        return f"{text}. {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {"placement": self.placement, "gpu_layers": self.gpu_layers,
                "layers_total": self.layers_total, "needed_bytes": self.needed_bytes,
                "available_bytes": self.available_bytes,
                "tokens_per_s": round(self.tokens_per_s, 1), "speed": self.speed,
                "summary": self.summary, "note": self.note}


def speed_class(tokens_per_s: float) -> str:
    for floor, name in SPEED_CLASSES:
        if tokens_per_s >= floor:
            return name
    return SPEED_CLASSES[-1][1]


def _flops_per_token(shape: ModelShape, seq_tokens: int) -> float:
    return 2.0 * shape.active_params + 4.0 * shape.n_layer * shape.n_embd * seq_tokens


_REF_FLOPS_PER_S = REF_CPU_TOKENS_PER_S * (
    2.0 * REF_ACTIVE_PARAMS + 4.0 * REF_LAYERS * REF_EMBD * REF_SEQ)


def cpu_tokens_per_second(shape: ModelShape, threads: int, seq_tokens: int = 256) -> float:
    """Embedding throughput on the CPU, calibrated on the starter model (2 threads)."""
    threads = max(int(threads), 1)
    effective = min(threads, 8) + 0.5 * max(threads - 8, 0)  # memory bandwidth runs out
    rate = _REF_FLOPS_PER_S * effective / REF_CPU_THREADS
    return rate / _flops_per_token(shape, seq_tokens)


def gpu_tokens_per_second(shape: ModelShape, kind: str, batch_tokens: int = 512,
                          gpu_fraction: float = 1.0, seq_tokens: int = 256) -> float:
    """Throughput with gpu_fraction of the layers offloaded. The rest of the weights cross the
    bus once per ubatch (llama.cpp runs big batches on the GPU anyway), which for embedding
    batches beats computing them on the CPU."""
    flops = GPU_FLOPS.get(kind, GPU_FLOPS["cuda"])
    per_batch = (batch_tokens * _flops_per_token(shape, seq_tokens) / flops
                 + GPU_UBATCH_SECONDS + GPU_LAYER_SECONDS * shape.n_layer)
    if gpu_fraction < 1.0 and kind == "cuda":
        cpu_weights = (1.0 - gpu_fraction) * shape.avg_layer_bytes * shape.n_layer
        per_batch += (cpu_weights + shape.output_bytes) / PCIE_BYTES_PER_S
    return batch_tokens / per_batch


def verdict(est: MemoryEstimate, gpu: GpuInfo) -> Verdict:
    """Fits on the GPU, fits in part (N of M layers), CPU only, or too big for this machine."""
    shape = est.shape
    layers = max(shape.n_layer, 1)
    cpu_rate = cpu_tokens_per_second(shape, gpu.cpu_threads or 1)
    ram_need = est.cpu_bytes
    ram_total = gpu.ram_total_bytes
    notes: list[str] = []
    if gpu.kind != "none" and gpu.offload_supported is False:
        notes.append("a GPU is present, but this llama-cpp-python build cannot use it")
    if gpu.usable:
        headroom = max(GPU_HEADROOM_MIN, int(GPU_HEADROOM_SHARE * gpu.total_bytes))
        room = gpu.free_bytes - headroom
        full = est.gpu_bytes(gpu.kind)
        if full <= room:
            rate = gpu_tokens_per_second(shape, gpu.kind, est.batch_tokens)
            return Verdict("gpu", -1, layers, full, gpu.free_bytes, rate, "fits on the GPU")
        fixed = est.compute_bytes + GPU_OVERHEAD.get(gpu.kind, 400 * MiB)
        per_layer = shape.avg_layer_bytes + est.kv_per_layer
        n = int((room - fixed) // per_layer) if per_layer > 0 and room > fixed else 0
        n = min(n, layers)
        if n >= 1 and gpu.kind != "metal":
            rate = gpu_tokens_per_second(shape, gpu.kind, est.batch_tokens, n / layers)
            need = fixed + n * per_layer
            return Verdict("partial", n, layers, need, gpu.free_bytes, max(rate, cpu_rate),
                           f"fits with partial offload ({n} of {layers} layers)")
        notes.append(f"needs about {full / GiB:.1f} GiB on the GPU, "
                     f"{max(room, 0) / GiB:.1f} GiB free")
    if ram_total and ram_need > 0.9 * ram_total:
        return Verdict("too_big", 0, layers, ram_need, ram_total, cpu_rate,
                       "too big for this machine",
                       f"needs about {ram_need / GiB:.1f} GiB of memory; the machine has "
                       f"{ram_total / GiB:.1f} GiB" + (f"; {'; '.join(notes)}" if notes else ""))
    if gpu.ram_available_bytes and ram_need > gpu.ram_available_bytes:
        notes.append(f"needs about {ram_need / GiB:.1f} GiB, more than the "
                     f"{gpu.ram_available_bytes / GiB:.1f} GiB free now: close other programs")
    return Verdict("cpu", 0, layers, ram_need, gpu.ram_available_bytes or ram_total, cpu_rate,
                   "CPU only", "; ".join(notes))


def assess(info: ModelInfo, gpu: GpuInfo, batch_tokens: int = MIN_BATCH_TOKENS,
           extra_weight_bytes: int = 0, context_tokens: int | None = None
           ) -> tuple[MemoryEstimate, Verdict]:
    """The estimate and the verdict for one model file (a chat model: with its context)."""
    est = estimate(info, batch_tokens, extra_weight_bytes, context_tokens)
    return est, verdict(est, gpu)


def semdex_batch_tokens(max_tokens: int, chunk_tokens: int | None = None,
                        default_chunk: int = 256) -> int:
    """The batch size embedder.Embedder loads a model with (n_ctx = n_batch = n_ubatch)."""
    chunk = chunk_tokens or default_chunk
    return min(max_tokens, max(chunk, MIN_BATCH_TOKENS))


# -- llama.cpp's own figures ------------------------------------------------------------------


@dataclass
class MeasuredBuffers:
    """Buffer sizes llama.cpp printed while loading (bytes), per kind, all devices summed."""

    model_bytes: int = 0
    kv_bytes: int = 0
    compute_bytes: int = 0
    output_bytes: int = 0
    by_device: dict[str, dict[str, int]] = field(default_factory=dict)
    log: str = ""


def measure_child_main(argv: list[str]) -> int:
    """The child of measure_buffers (`python -m desktop.models.memory ARGS`, or the frozen app with
    --semdex-measure-buffers): load with Semdex's context settings, let llama.cpp log."""
    import llama_cpp

    from desktop.models.llama_model import init_backends

    # llama.cpp's log (routed into logging once the backends are up) is what the parent reads
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
    path, pooling, n = argv[0], int(argv[1]), int(argv[2])
    no_alloc, gpu_layers = argv[3] == "1", int(argv[4])
    init_backends()
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = gpu_layers
    if no_alloc:
        mp.no_alloc = True
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
        mp.use_extra_bufts = False
    model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
    if not model:
        return 3
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = cp.n_batch = cp.n_ubatch = n
    cp.n_seq_max = min(n, llama_cpp.llama_max_parallel_sequences())
    cp.embeddings = True
    cp.pooling_type = pooling
    cp.kv_unified = True
    cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    cp.n_threads = cp.n_threads_batch = 1
    ctx = llama_cpp.llama_init_from_model(model, cp)
    return 0 if ctx else 4


_BUFFER_LINE = re.compile(
    r"(?P<dev>[\w.:-]+)\s+(?P<kind>model|output|KV|compute) buffer size\s*=\s*"
    r"(?P<mib>[\d.]+) MiB")
_KV_TOTAL = re.compile(r"llama_kv_cache: size =\s*(?P<mib>[\d.]+) MiB")


def parse_buffer_log(text: str) -> MeasuredBuffers:
    """The buffer sizes in a llama.cpp load log (verbose output)."""
    out = MeasuredBuffers(log=text)
    kv_total = None
    for line in text.splitlines():
        if line.lstrip().startswith("~"):  # destructor lines repeat the compute buffer
            continue
        m = _BUFFER_LINE.search(line)
        if m:
            nbytes = int(float(m.group("mib")) * MiB)
            kind = m.group("kind").lower()
            dev = out.by_device.setdefault(m.group("dev"), {})
            dev[kind] = dev.get(kind, 0) + nbytes
            setattr(out, f"{kind}_bytes", getattr(out, f"{kind}_bytes") + nbytes)
            continue
        m = _KV_TOTAL.search(line)
        if m:
            kv_total = int(float(m.group("mib")) * MiB)
    if kv_total is not None:  # planned size; the buffer line says 0 under no_alloc
        out.kv_bytes = kv_total
    return out


def measure_buffers(path: str | Path, pooling: int, batch_tokens: int = MIN_BATCH_TOKENS,
                    *, no_alloc: bool = True, gpu_layers: int = 0,
                    timeout: float = 120.0) -> MeasuredBuffers:
    """Load the model in a subprocess with Semdex's context settings and read what llama.cpp
    says it allocates. no_alloc plans the buffers without allocating them (or reading the
    weights), so any size of model is cheap to measure. Raises RuntimeError on failure."""
    cmd = child_command("--semdex-measure-buffers", str(path), str(int(pooling)),
                        str(int(batch_tokens)), "1" if no_alloc else "0", str(int(gpu_layers)))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    text = proc.stderr + proc.stdout
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-5:])
        raise RuntimeError(f"llama.cpp could not load {path} (exit {proc.returncode}): {tail}")
    measured = parse_buffer_log(text)
    if not measured.compute_bytes:
        raise RuntimeError(f"no buffer sizes in llama.cpp's log for {path}")
    return measured


def describe_estimate(est: MemoryEstimate) -> str:
    """A short breakdown, for `semdex models --verbose`."""
    parts = {"weights": est.weights_bytes, "KV": est.kv_bytes, "compute": est.compute_bytes,
             "output": est.output_bytes}
    return ", ".join(f"{k} {v / MiB:,.0f} MiB" for k, v in parts.items())


if __name__ == "__main__":
    sys.exit(measure_child_main(sys.argv[1:]))
