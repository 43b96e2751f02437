"""Embedding throughput and memory on the device Semdex chooses (a GPU, where there is one).

Issue 12's GPU figures: the starter model and a 7B decoder embedder, each embedded through
Semdex's own Embedder on the device it picks (`--device` to name one), with:

* tokens/s after a warm-up, passages packed as Semdex packs them;
* the memory the device lost while the model was loaded (NVML's reading of this process on
  NVIDIA, else llama.cpp's free-memory figure before and after) against the picker's estimate
  (desktop/models/memory.py `gpu_bytes`);
* the device, backend, layers offloaded and load time.

No 7B weights can be downloaded here: the 7B model is E5-Mistral-7B-Instruct's exact shape
(4096 wide, 32 layers, 32/8 heads, FFN 14336, 32k vocabulary) written by the tests' fixture
as a sparse Q4_K_M file (tests/fixtures/tiny_gguf.py `write_sparse_llama`): its weights read as
zeros, so its vectors mean nothing, but llama.cpp runs the same kernels on the same amount of
data as a real Q4_K_M file (4.4 GB). Goal: at least 15,000 tokens/s on an H100/H200-class GPU.

    python bench/gpu.py                       # both models, on the best device
    python bench/gpu.py --layers 2 --passages 8   # a quick run (e.g. on a CPU)

Prints a Markdown table headed by the command; writes bench/out/gpu-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "nfcorpus"


def nvml_used() -> int | None:
    """GPU memory this process holds (NVIDIA), or None where NVML cannot say."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if p.pid == os.getpid():
                return int(p.usedGpuMemory or 0)
        return 0
    except Exception:  # noqa: BLE001 - no NVIDIA driver, or no figure
        return None


def device_free(name: str | None) -> int | None:
    from desktop.models import devices

    found, _ = devices.list_devices()
    for d in found:
        if d.name == name:
            return d.free_bytes
    return None


def texts(n: int) -> list[str]:
    out = []
    path = DATA / "corpus.jsonl"
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                out.append(f"{doc.get('title', '')}. {doc['text']}")
                if len(out) == n:
                    break
    while len(out) < n:
        out.append("Semdex finds passages by meaning in the files on this machine. " * 20)
    return out


def run(path: Path, family: str | None, passages: list[str], device: str | None,
        chunk: int | None, synthetic: bool) -> dict:
    from desktop.models.embedder import Embedder, EmbedderSettings
    from desktop.models.memory import estimate

    settings = EmbedderSettings(family=family, device=device, chunk_tokens=chunk)
    free_before = None
    from desktop.models.llama_model import gpu_offload_supported

    if gpu_offload_supported():
        from desktop.models.embedder import gpu_now

        chosen = gpu_now(device).device
        free_before = device_free(chosen) if chosen else None
    before_nvml = nvml_used()
    t0 = time.perf_counter()
    with Embedder(path, settings) as e:
        load_s = time.perf_counter() - t0
        p = e.load_params
        if synthetic:  # token ids: the sparse model's vocabulary is made up
            rng = np.random.default_rng(0)
            n = e.chunk_tokens
            seqs = [list(rng.integers(300, e.info.vocab_size or 32000, n - 1)) + [e._eos or 2]
                    for _ in passages]
        else:
            seqs = []
            for t in passages:
                tok = e.encode_document(t)
                seqs.append(tok[:e.chunk_tokens - 1] + tok[-1:] if len(tok) > e.chunk_tokens
                            else tok)
        e.embed_tokens(seqs[:2])  # warm-up: the first decodes allocate
        after_nvml = nvml_used()
        free_after = device_free(p.device) if p.device else None
        t1 = time.perf_counter()
        e.embed_tokens(seqs)
        seconds = time.perf_counter() - t1
        tokens = sum(len(s) for s in seqs)
        est = estimate(e.info, e.batch_tokens)
        out = {"model": e.info.name, "file": path.name, "device": p.device or "cpu",
               "compute": p.compute, "gpu_layers": p.gpu_layers, "batch_tokens": e.batch_tokens,
               "passages": len(seqs), "tokens": tokens, "seconds": round(seconds, 3),
               "tokens_per_s": round(tokens / seconds, 1), "load_s": round(load_s, 2),
               "estimate_gpu_bytes": est.gpu_bytes(), "estimate_cpu_bytes": est.cpu_bytes,
               "fallback": e.fallback_note}
    if before_nvml is not None and after_nvml is not None:
        out["measured_gpu_bytes"] = after_nvml - before_nvml
        out["measured_by"] = "NVML (this process)"
    elif free_before is not None and free_after is not None:
        out["measured_gpu_bytes"] = free_before - free_after
        out["measured_by"] = "llama.cpp's free memory"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", help="a llama.cpp device (Vulkan0, CUDA0) or cpu; default: "
                    "the one Semdex chooses")
    ap.add_argument("--passages", type=int, default=256)
    ap.add_argument("--layers", type=int, default=32, help="layers of the 7B shape")
    ap.add_argument("--chunk", type=int, default=512, help="tokens per 7B passage")
    ap.add_argument("--skip-starter", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()
    from desktop.models.starter import starter_model_path
    from tests.fixtures.tiny_gguf import write_sparse_llama

    args.out.mkdir(parents=True, exist_ok=True)
    command = "python bench/gpu.py " + " ".join(sys.argv[1:])
    results = []
    if not args.skip_starter:
        results.append(run(starter_model_path(), None, texts(args.passages), args.device,
                           None, synthetic=False))
    shape = args.out / f"e5-mistral-7b-shape-{args.layers}L-Q4_K_M.gguf"
    if not shape.exists():
        write_sparse_llama(shape, n_layer=args.layers, n_embd=4096, n_head=32, n_head_kv=8,
                           n_ff=14336, n_vocab=32000, name="e5-mistral-7b-instruct-shape",
                           quant="Q4_K_M")
    results.append(run(shape, "e5-mistral", texts(args.passages), args.device, args.chunk,
                       synthetic=True))
    (args.out / "gpu-results.json").write_text(json.dumps({"command": command,
                                                            "results": results}, indent=2))
    print(f"\n`{command}`:\n")
    print("| model | runs on | layers on the GPU | tokens a passage | tokens/s | memory on "
          "the device: measured / estimated | load |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        mem = (f"{r['measured_gpu_bytes'] / 2**30:.2f} GiB ({r['measured_by']})"
               if "measured_gpu_bytes" in r else "-")
        layers = {-1: "all", 0: "none"}.get(r["gpu_layers"], str(r["gpu_layers"]))
        print(f"| {r['model']} ({r['file']}) | {r['compute']} | {layers} | "
              f"{r['tokens'] // max(1, r['passages'])} | {r['tokens_per_s']:,.0f} | {mem} / "
              f"{r['estimate_gpu_bytes'] / 2**30:.2f} GiB | {r['load_s']:.1f} s |")
        if r["fallback"]:
            print(f"\n{r['fallback']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
