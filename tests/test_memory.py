"""The memory estimate against llama.cpp's own figures, and the verdicts built on it.

llama.cpp prints the KV cache, compute and output buffer sizes it allocates; a subprocess loads
each model with Semdex's settings (n_ctx = n_batch = n_ubatch = 512, embeddings, explicit
pooling, flash attention as llama.cpp decides) and the estimate must agree: KV and output
exactly (they are formulas), the compute buffer within a factor of 1.5 (allocator reuse is not
modelled).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from desktop.models.catalogue import by_key
from desktop.models.gguf_info import read_model_info
from desktop.models.gpu import GpuInfo
from desktop.models.memory import (
    GiB,
    Hyperparameters,
    MiB,
    assess,
    cpu_tokens_per_second,
    estimate,
    measure_buffers,
    model_shape,
    parse_buffer_log,
    semdex_batch_tokens,
    speed_class,
    verdict,
)
from desktop.models.profiles import POOL_LAST, POOL_MEAN
from tests.fixtures.tiny_gguf import write_sparse_llama, write_tiny_llama

COMPUTE_FACTOR = 1.5
pytest.importorskip("llama_cpp")


def _close(estimated: int, measured: int, factor: float) -> bool:
    return measured / factor <= estimated <= measured * factor


def _check(path: Path, pooling: int, *, no_alloc: bool) -> None:
    est = estimate(read_model_info(path), 512)
    got = measure_buffers(path, pooling, 512, no_alloc=no_alloc)
    mib = f"estimate {est.compute_bytes / MiB:.2f} MiB, llama.cpp {got.compute_bytes / MiB:.2f}"
    assert abs(est.kv_bytes - got.kv_bytes) <= 0.02 * got.kv_bytes + 0.01 * MiB
    assert abs(est.output_bytes - got.output_bytes) <= 0.02 * got.output_bytes + 0.01 * MiB
    assert _close(est.compute_bytes, got.compute_bytes, COMPUTE_FACTOR), mib


def test_starter_estimate_matches_llama_cpp(starter_model):
    _check(starter_model, POOL_MEAN, no_alloc=False)  # a real load: weights and all


def test_tiny_llama_estimate_matches_llama_cpp(tmp_path):
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    _check(path, POOL_LAST, no_alloc=False)
    planned = measure_buffers(path, POOL_LAST, 512, no_alloc=True)  # plans the same buffers
    assert abs(planned.kv_bytes - estimate(read_model_info(path)).kv_bytes) < 0.01 * MiB


@pytest.mark.skipif(sys.platform == "win32", reason="needs a sparse file (holes for weights)")
def test_mistral_7b_width_estimate_matches_llama_cpp(tmp_path):
    """E5-Mistral's real widths (4096 dim, 32/8 heads, ff 14336, 32k vocab, tied head) with two
    of its 32 layers: compute and output buffers do not depend on the depth, KV is per layer.
    llama.cpp plans the buffers without allocating them (no_alloc)."""
    path = write_sparse_llama(tmp_path / "e5-mistral-shape.gguf", n_layer=2, n_embd=4096,
                               n_head=32, n_head_kv=8, n_ff=14336, n_vocab=32000,
                               name="e5-mistral-7b-instruct-shape")
    if path.stat().st_blocks * 512 > 64 * MiB:
        pytest.skip("this file system does not keep sparse files")
    _check(path, POOL_LAST, no_alloc=True)
    est = estimate(read_model_info(path))
    assert est.kv_bytes == 2 * 2 * 512 * 8 * 128 * 2  # 2 of 32 layers: 4 MiB of 64
    assert est.shape.tied_output


def test_shapes_from_headers(starter_model, tmp_path):
    tiny = model_shape(read_model_info(write_tiny_llama(tmp_path / "t.gguf")))
    assert (tiny.n_layer, tiny.n_embd, tiny.n_head, tiny.n_head_kv, tiny.n_ff) == (2, 64, 4, 2,
                                                                                  128)
    assert tiny.causal and tiny.gated_ffn and tiny.n_vocab == 1100 and len(tiny.layer_bytes) == 2
    mini = model_shape(read_model_info(starter_model))
    assert not mini.causal and not mini.gated_ffn and mini.n_vocab == 30522
    assert estimate(mini).kv_bytes == 0  # encoders keep no KV cache
    # the CPU speed is calibrated on this very model: ~4,200 tokens/s on 2 threads
    assert 3500 < cpu_tokens_per_second(mini, 2) < 5000
    assert cpu_tokens_per_second(mini, 8) > 3 * cpu_tokens_per_second(mini, 2)


def test_seven_b_estimates_at_semdex_settings():
    e5 = by_key("e5-mistral-7b-instruct")
    q4 = e5.memory(e5.recommended_quant())
    assert q4.kv_bytes == 64 * MiB  # 2 * 32 * 512 * 8 * 128 * 2
    assert 4.5 * 10**9 < q4.gpu_bytes() < 6.5 * 10**9  # "a 7B Q4 needs ~5-6 GB"
    q8 = e5.memory(next(q for q in e5.quants if q.name == "Q8_0"))
    assert 7.7 * 10**9 < q8.gpu_bytes() < 9.5 * 10**9


def _gpu(kind: str, total_gib: float, free_gib: float, *, offload: bool = True,
         ram_gib: float = 32, threads: int = 8) -> GpuInfo:
    return GpuInfo(kind, "test GPU", int(total_gib * GiB), int(free_gib * GiB), offload,
                   ram_total_bytes=int(ram_gib * GiB), ram_available_bytes=int(ram_gib * GiB * .7),
                   cpu_threads=threads, device_count=1 if kind != "none" else 0)


def test_verdicts_for_a_7b_q4():
    est = by_key("e5-mistral-7b-instruct").memory()
    big = verdict(est, _gpu("cuda", 24, 23))
    assert big.placement == "gpu" and big.gpu_layers == -1 and big.summary == "fits on the GPU"
    small = verdict(est, _gpu("cuda", 4, 3.8))
    assert small.placement == "partial" and 1 <= small.gpu_layers < 32
    assert small.summary == f"fits with partial offload ({small.gpu_layers} of 32 layers)"
    cpu = verdict(est, _gpu("none", 0, 0, offload=False))
    assert cpu.placement == "cpu" and cpu.summary == "CPU only" and cpu.gpu_layers == 0
    assert cpu.speed == "very slow" and big.tokens_per_s > 50 * cpu.tokens_per_s
    assert big.tokens_per_s >= small.tokens_per_s > cpu.tokens_per_s


def test_verdict_edge_cases(starter_model):
    est = by_key("e5-mistral-7b-instruct").memory()
    no_build = verdict(est, _gpu("cuda", 24, 23, offload=False))
    assert no_build.placement == "cpu" and "cannot use it" in no_build.note
    tiny_gpu = verdict(est, _gpu("cuda", 1, 0.5))
    assert tiny_gpu.placement == "cpu" and "GiB on the GPU" in tiny_gpu.note
    assert verdict(est, _gpu("none", 0, 0, ram_gib=4)).placement == "too_big"
    mac = verdict(est, _gpu("metal", 16 * 0.66, 16 * 0.66, ram_gib=16))
    assert mac.placement == "gpu"
    e5 = by_key("e5-mistral-7b-instruct")
    q8 = e5.memory(next(q for q in e5.quants if q.name == "Q8_0"))
    assert verdict(q8, _gpu("metal", 8 * 0.66, 8 * 0.66, ram_gib=8)).placement == "too_big"
    assert verdict(q8, _gpu("metal", 12 * 0.66, 12 * 0.66, ram_gib=12)).placement == "cpu"
    est_mini, v = assess(read_model_info(starter_model), _gpu("none", 0, 0, threads=2))
    assert v.placement == "cpu" and v.speed == "fast" and est_mini.cpu_bytes < 200 * MiB


def test_speed_classes_and_batch_tokens():
    assert [speed_class(x) for x in (5000, 900, 150, 3)] == ["fast", "good", "slow", "very slow"]
    assert semdex_batch_tokens(max_tokens=256, default_chunk=256) == 256
    assert semdex_batch_tokens(max_tokens=4096, default_chunk=512) == 512
    assert semdex_batch_tokens(max_tokens=8192, chunk_tokens=1024) == 1024


def test_shape_from_hparams_splits_the_file_size():
    s = Hyperparameters(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336,
                        n_vocab=32000, tied=True).shape(int(4.4e9))
    assert abs(s.input_bytes + sum(s.layer_bytes) - 4.4e9) < 1e6
    assert s.output_bytes == s.input_bytes and 6.9e9 < s.active_params < 7.3e9


def test_parse_buffer_log_with_gpu_lines():
    log = (
        "load_tensors:        CUDA0 model buffer size =  4095.05 MiB\n"
        "load_tensors:   CPU_Mapped model buffer size =    70.31 MiB\n"
        "llama_context:  CUDA_Host  output buffer size =    35.25 MiB\n"
        "llama_kv_cache:      CUDA0 KV buffer size =    64.00 MiB\n"
        "llama_kv_cache: size =   64.00 MiB (   512 cells,  32 layers,  1/1 seqs)\n"
        "sched_reserve:      CUDA0 compute buffer size =   164.00 MiB\n"
        "sched_reserve:  CUDA_Host compute buffer size =     9.01 MiB\n"
        "~llama_context:      CUDA0 compute buffer size is 164.0000 MiB, matches expectation\n")
    got = parse_buffer_log(log)
    assert got.by_device["CUDA0"] == {"model": int(4095.05 * MiB), "kv": 64 * MiB,
                                      "compute": 164 * MiB}
    assert got.kv_bytes == 64 * MiB and got.output_bytes == int(35.25 * MiB)
    assert got.compute_bytes == int(164 * MiB) + int(9.01 * MiB)
