"""The llama.cpp backends a shipped build carries, and the smoke test of each one.

Every build carries the CPU backend as run-time variants (x64 up to AVX-512 and AMX, the best
one for the processor loaded at start) and, beside it, one GPU backend as a loadable module:

    vulkan  Linux and Windows by default: one backend for NVIDIA, AMD and Intel GPUs. Without
            a Vulkan driver (libvulkan) the module is not loaded and the app runs on the CPU.
    cuda    NVIDIA only, faster there; `build.py --backend cuda` (needs the CUDA toolkit).
    metal   macOS on Apple silicon (embedded in the library; no module).
    cpu     no GPU backend at all.

The smoke test (`smoke_backends`) runs every variant the build machine can run, and every GPU
device it has, on quantized test models (Q4_0, Q4_1, Q8_0 and Q4_K: the weights whose kernels
crashed llama.cpp on AMX CPUs) and checks the GPU's vectors against the CPU's (cosine >=
0.999 per passage). The models are made with the build venv's own llama.cpp quantizer from the
starter model and the tests' tiny LLaMA (`python installers/backends.py make-models DIR`).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("vulkan", "cuda", "metal", "cpu")
# CUDA: the cards of the last eight years (Turing to Blackwell), PTX for newer ones
CUDA_ARCHITECTURES = "75-virtual;80-virtual;86-real;89-real;90-virtual;120-virtual"
# the quantized files every variant runs: (file, family, what it is)
QUANTIZED = (("minilm-Q8_0.gguf", "all-minilm", "MiniLM Q8_0"),
             ("minilm-Q4_0.gguf", "all-minilm", "MiniLM Q4_0"),
             ("minilm-Q4_1.gguf", "all-minilm", "MiniLM Q4_1"),
             ("tiny256-Q4_K_M.gguf", "e5-mistral", "LLaMA-shaped Q4_K_M"))
COSINE_FLOOR = 0.999


def default_backend(system: str | None = None, machine: str | None = None) -> str:
    system = system or platform.system()
    machine = machine or platform.machine()
    if system == "Darwin":
        return "metal" if machine == "arm64" else "cpu"
    return "vulkan"


def cmake_args(backend: str, system: str) -> list[str]:
    """The CMake flags that add the backend (to the CPU ones build.py sets)."""
    if backend == "vulkan":
        return ["-DGGML_VULKAN=ON"]
    if backend == "cuda":
        if system == "Darwin":
            raise SystemExit("build.py: there is no CUDA on macOS")
        return ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={CUDA_ARCHITECTURES}"]
    if backend == "metal":
        if system != "Darwin":
            raise SystemExit("build.py: Metal is macOS's")
        return []  # on by default there, the shader library embedded
    if system == "Darwin":
        return ["-DGGML_METAL=OFF"]
    return []


def build_packages(backend: str) -> dict[str, str]:
    """Debian packages a backend's build needs (command or file -> package): the Vulkan
    headers and shader compiler (unless LunarG's Vulkan SDK is installed: $VULKAN_SDK, as in
    the release workflow, whose Ubuntu is too old for Debian's), and Mesa's lavapipe with
    vulkaninfo, so the smoke test has a Vulkan device without a GPU."""
    if backend != "vulkan":
        return {}
    out = {"vulkaninfo": "vulkan-tools",
           "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json": "mesa-vulkan-drivers"}
    if not os.environ.get("VULKAN_SDK"):
        out.update({"glslc": "glslc", "/usr/include/vulkan/vulkan.h": "libvulkan-dev",
                    "/usr/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake": "spirv-headers"})
    return out


EXTRA_CMAKE_ENV = "SEMDEX_LLAMA_CMAKE_ARGS"  # more CMake flags, e.g. -DVulkan_INCLUDE_DIR=...
MIN_VULKAN_HEADERS = 275  # llama.cpp's Vulkan backend uses VK_EXT_layer_settings (1.3.275)


def extra_cmake_args() -> list[str]:
    return os.environ.get(EXTRA_CMAKE_ENV, "").split()


def vulkan_headers_version(args: list[str]) -> tuple[int, str] | None:
    """(VK_HEADER_VERSION, header path) of the Vulkan headers the build will use: the
    -DVulkan_INCLUDE_DIR given, else $VULKAN_SDK's, else the system's; None if none found."""
    dirs = [a.split("=", 1)[1] for a in args if a.startswith("-DVulkan_INCLUDE_DIR=")]
    if os.environ.get("VULKAN_SDK"):
        dirs.append(os.path.join(os.environ["VULKAN_SDK"], "include"))
    dirs += ["/usr/include", "/usr/local/include"]
    for d in dirs:
        header = Path(d) / "vulkan" / "vulkan_core.h"
        if header.is_file():
            m = re.search(r"#define\s+VK_HEADER_VERSION\s+(\d+)", header.read_text(
                encoding="utf-8", errors="replace"))
            if m:
                return int(m.group(1)), str(header)
    return None


def check_vulkan_headers(args: list[str]) -> None:
    """Fail in seconds, not after ten minutes of compiling, on headers too old for it."""
    found = vulkan_headers_version(args)
    if found is None:
        raise SystemExit("build.py: no Vulkan headers found (Debian: libvulkan-dev; or "
                         "LunarG's Vulkan SDK)")
    version, header = found
    if version < MIN_VULKAN_HEADERS:
        raise SystemExit(
            f"build.py: the Vulkan headers in {header} are 1.x.{version}; llama.cpp's Vulkan "
            f"backend needs 1.3.{MIN_VULKAN_HEADERS} or newer. Install LunarG's Vulkan SDK "
            "(it sets VULKAN_SDK), or newer headers (Debian 13's libvulkan-dev) and point "
            f"{EXTRA_CMAKE_ENV}=-DVulkan_INCLUDE_DIR=/their/include at them, or build "
            "--backend cpu")


# -- the test models (run by the build venv's Python) ----------------------------------------

def make_models(out: Path) -> list[Path]:
    """The quantized test files, with the llama.cpp of the venv that runs this."""
    sys.path.insert(0, str(ROOT))
    from desktop.models.convert_bert import convert_bert
    from desktop.models.starter import find_starter_weights
    from tests.fixtures.quantize import quantize
    from tests.fixtures.tiny_gguf import write_tiny_llama

    out.mkdir(parents=True, exist_ok=True)
    f32 = convert_bert(find_starter_weights(), out / "minilm-F32.gguf", ftype="f32",
                       name="all-MiniLM-L6-v2")
    made = [quantize(f32, out / f"minilm-{k}.gguf", k) for k in ("Q8_0", "Q4_0", "Q4_1")]
    tiny = write_tiny_llama(out / "tiny256-F32.gguf", n_embd=256, n_ff=512)
    made.append(quantize(tiny, out / "tiny256-Q4_K_M.gguf", "Q4_K_M"))
    return made


def read_vectors(data_dir: Path) -> dict[str, list[float]]:
    """passage id -> vector, from every table of a data dir (the build venv's LanceDB)."""
    import lancedb

    db = lancedb.connect(str(data_dir / "lancedb"))
    out: dict[str, list[float]] = {}
    for name in db.list_tables().tables:
        if not name.startswith("chunks_"):
            continue
        tbl = db.open_table(name).to_arrow()
        for pid, vec in zip(tbl.column("id").to_pylist(), tbl.column("vector").to_pylist(),
                            strict=True):
            out[f"{name}/{pid}"] = vec
    return out


def compare(a: Path, b: Path) -> dict:
    """The lowest cosine between the same passages' vectors in two data dirs."""
    import numpy as np

    va, vb = read_vectors(a), read_vectors(b)
    if not va or set(va) != set(vb):
        raise SystemExit(f"compare: the two indexes differ ({len(va)} and {len(vb)} passages)")
    x = np.array([va[k] for k in sorted(va)], dtype=np.float64)
    y = np.array([vb[k] for k in sorted(va)], dtype=np.float64)
    cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return {"passages": len(va), "min_cosine": float(cos.min())}


# -- the smoke test (run by build.py's Python, on the frozen app) ----------------------------

def vulkan_visible() -> dict[str, str]:
    """Every Vulkan device visible to llama.cpp, the CPU ones too: by default it takes only
    real GPUs, and a build machine without one still has Mesa's lavapipe to run Vulkan on."""
    if "GGML_VK_VISIBLE_DEVICES" in os.environ or not shutil.which("vulkaninfo"):
        return {}
    try:
        out = subprocess.run(["vulkaninfo", "--summary"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    count = len(re.findall(r"^GPU\d+:", out, re.M))
    return {"GGML_VK_VISIBLE_DEVICES": ",".join(map(str, range(count)))} if count else {}


TEXTS = {
    "tax.txt": "Our quarterly tax return is due at the end of April; the accountant files it.",
    "zoo.txt": "The zebra at the city zoo escaped on Tuesday morning and was found by noon.",
    "bread.md": "# Sourdough\n\nFeed the starter with rye flour and water every day.",
    "dinner.txt": "Crème brûlée, 寿司 and emoji 🍣 for dinner on Friday with friends.",
    "lamp.txt": "The lighthouse keeper climbed the tower each night to light the lamp.",
}


def smoke_backends(exe: Path, env: dict[str, str], work: Path, venv_py: Path,
                   say: Callable[[str], None]) -> dict:
    """Every CPU variant this machine runs, and every GPU device the frozen app finds, on the
    quantized test models; the GPU's vectors against the CPU's. Raises SystemExit on failure."""
    docs = work / "backend-docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in TEXTS.items():
        (docs / name).write_text(text + "\n", encoding="utf-8")
    models = work / "backend-models"
    subprocess.run([str(venv_py), str(Path(__file__)), "make-models", str(models)], check=True,
                   cwd=ROOT, timeout=600)
    figures: dict = {"variants": {}, "gpus": {}}
    env = {**env, **vulkan_visible()}

    def semdex(args: list[str], extra_env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(exe), *args], env={**env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=600, cwd=work)
        if check and proc.returncode != 0:
            raise SystemExit(f"smoke: `semdex {' '.join(args)}` exited {proc.returncode}"
                             f"{' with ' + str(extra_env) if extra_env else ''}\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return proc

    def index(data: Path, model: Path, family: str, device: str,
              extra_env: dict[str, str] | None = None) -> None:
        semdex(["index", "--data-dir", str(data), "--model", str(model), "--family", family,
                "--device", device, str(docs), "--json"], extra_env)
        hits = json.loads(semdex(["search", "--data-dir", str(data), "--model", str(model),
                                  "--family", family, "--device", device, "--mode", "semantic",
                                  "--json", "when is the tax return due"], extra_env).stdout)
        results = hits.get("results", [])
        if len(results) < 1:
            raise SystemExit(f"smoke: {model.name} on {device} found nothing")
        if family == "all-minilm" and Path(results[0]["path"]).name != "tax.txt":
            raise SystemExit(f"smoke: {model.name} on {device} ranked "
                             f"{results[0]['path']} first, not tax.txt")

    status = json.loads(semdex(["models", "--json"]).stdout)["accelerator"]
    variants = status_variants(semdex)
    for variant in variants:
        venv = {"SEMDEX_LLAMA_CPU_VARIANT": variant}
        probe = semdex(["status", "--json", "--data-dir", str(work / "probe")], venv,
                       check=False)
        if probe.returncode != 0:
            figures["variants"][variant] = "not runnable on this processor"
            continue
        for name, family, _label in QUANTIZED:
            index(work / f"cpu-{variant}-{name}", models / name, family, "cpu", venv)
        figures["variants"][variant] = "ran " + ", ".join(q[2] for q in QUANTIZED)
        say(f"smoke: CPU variant {variant}: {figures['variants'][variant]}")
    for gpu in status.get("gpus", []):
        dev = gpu["name"]
        runs = {}
        for name, family, _label in (("starter", "all-minilm", ""), *QUANTIZED):
            model = (models / "minilm-F32.gguf" if name == "starter" else models / name)
            on_gpu, on_cpu = work / f"{dev}-{name}", work / f"cpu-ref-{name}"
            index(on_gpu, model, family, dev)
            if not on_cpu.exists():
                index(on_cpu, model, family, "cpu")
            got = json.loads(subprocess.run(
                [str(venv_py), str(Path(__file__)), "compare", str(on_gpu), str(on_cpu)],
                check=True, capture_output=True, text=True, cwd=ROOT).stdout)
            runs[name] = got["min_cosine"]
            if name in ("starter", "minilm-Q8_0.gguf") and got["min_cosine"] < COSINE_FLOOR:
                raise SystemExit(f"smoke: {model.name} on {dev} gave vectors that differ from "
                                 f"the CPU's (lowest cosine {got['min_cosine']:.5f})")
        figures["gpus"][f"{gpu['backend']}: {gpu['description']} ({dev})"] = runs
        say(f"smoke: {dev} ({gpu['description']}): lowest cosine to the CPU's vectors "
            + ", ".join(f"{k} {v:.5f}" for k, v in runs.items()))
    if not status.get("gpus"):
        say("smoke: no GPU device here: the GPU backends were not run")
    return figures


def status_variants(semdex: Callable) -> list[str]:
    """The CPU variants the frozen app carries (from its --list-cpu-variants)."""
    out = semdex(["models", "--json"]).stdout
    return list(json.loads(out).get("cpu_variants", []))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "make-models":
        for path in make_models(Path(argv[1])):
            print(path)
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        print(json.dumps(compare(Path(argv[1]), Path(argv[2]))))
        return 0
    print("usage: backends.py make-models DIR | compare DATA_DIR DATA_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

