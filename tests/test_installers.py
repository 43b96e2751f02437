"""The installers' parts that can be checked without building them (installers/build.py
builds, smoke-tests and validates the real packages; that takes too long for the suite).

The NSIS script is compiled in tests/test_installer_nsis.py, the release workflow checked in
tests/test_release_workflow.py.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.util
import io
import plistlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "installers"))  # build.py imports app_info the same way
app_info = importlib.import_module("app_info")
backends = importlib.import_module("backends")
_spec = importlib.util.spec_from_file_location("semdex_build", ROOT / "installers" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

LINUX = ROOT / "installers" / "linux"
DESKTOP_FILE = LINUX / f"{app_info.APP_ID}.desktop"
METAINFO = LINUX / f"{app_info.APP_ID}.metainfo.xml"


def test_version_is_the_packages():
    from desktop import __version__

    assert app_info.version() == __version__
    text = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{__version__}"' in text


def test_the_spec_is_python_and_collects_what_pyinstaller_cannot_see():
    spec = (ROOT / "installers" / "semdex.spec").read_text()
    ast.parse(spec)  # it is Python: a syntax error would only show in a 40 s build
    assert 'collect_dynamic_libs("llama_cpp")' in spec  # ctypes-loaded libllama/libggml*
    assert "strip=False" in spec and "upx=False" in spec  # stripping breaks numpy's OpenBLAS
    assert '"models"' in spec and "all-MiniLM-L6-v2-F16.gguf" in spec  # the starter, bundled
    assert '"desktop/resources"' in spec  # the icon, at the package's own path
    assert "desktop\" / \"__main__.py" in spec  # the entry that routes the child flags
    assert app_info.WINDOWS_GUI_EXE.lower() != app_info.WINDOWS_CLI_EXE.lower()  # NTFS
    assert "BUNDLE(" in spec and "info_plist=app_info.info_plist()" in spec


def test_the_spec_trims_what_semdex_does_not_use():
    """The trimming rules of the spec, applied to real destination names."""
    spec = (ROOT / "installers" / "semdex.spec").read_text()
    source = spec[spec.index("GTK_STACK = ("):spec.index("a.binaries = [")]
    scope: dict = {"SYSTEM": "Linux"}
    exec(compile(source, "semdex.spec", "exec"), scope)  # noqa: S102 (our own file)
    dropped = scope["_dropped"]
    for dest in ("PySide6/Qt/translations/qtbase_de.qm", "libarrow.so.2600",
                 "pyarrow/tests/data/x.gz", "libstdc++.so.6", "libgcc_s.so.1",
                 "PySide6/Qt/plugins/platforms/libqvnc.so", "libQt6Quick.so.6",
                 "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
                 "pyarrow/libarrow_s3.so.2600", "pyarrow/_s3fs.cpython-311-x86_64-linux-gnu.so",
                 "PySide6/Qt/plugins/platformthemes/libqgtk3.so", "libgtk-3.so.0",
                 "libgdk_pixbuf-2.0.so.0", "libpango-1.0.so.0", "libwayland-client.so.0",
                 "libvulkan.so.1"):
        assert dropped(dest), dest
    for dest in ("pyarrow/libarrow.so.2600", "PySide6/Qt/plugins/platforms/libqxcb.so",
                 "PySide6/Qt/plugins/platforms/libqwayland.so", "PySide6/Qt/lib/libQt6Pdf.so.6",
                 "PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so",
                 "libglib-2.0.so.0", "libgio-2.0.so.0", "libdbus-1.so.3",
                 "llama_cpp/lib/libggml-cpu-haswell.so", "llama_cpp/lib/libllama.so",
                 "llama_cpp/lib/libggml-vulkan.so",
                 "numpy.libs/libscipy_openblas64_-fdde5778.so", "models/x.gguf",
                 "pyarrow/libarrow_compute.so.2600", "pyarrow/libarrow_dataset.so.2600",
                 "pyarrow/_compute.cpython-311-x86_64-linux-gnu.so"):
        assert not dropped(dest), dest


@pytest.mark.parametrize("system, machine", [("Linux", "x86_64"), ("Windows", "AMD64"),
                                             ("Darwin", "arm64"), ("Darwin", "x86_64")])
def test_llama_cpp_is_built_for_every_cpu(system, machine, monkeypatch):
    monkeypatch.setattr(build, "SYSTEM", system)
    monkeypatch.setattr(build.platform, "machine", lambda: machine)
    args = build.llama_cmake_args()
    assert "-DGGML_NATIVE=OFF" in args
    if system in ("Linux", "Windows"):
        assert {"-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"} <= set(args)
        # the variants land beside libllama, where desktop/models/llama_model.py loads them from
        assert "-DCMAKE_INSTALL_BINDIR=llama_cpp/lib" in args
    assert ("-DGGML_OPENMP=OFF" in args) is (system == "Windows")  # else vcomp140.dll
    # Intel Macs: llama-cpp-python turns AVX/AVX2/FMA/F16C off, and BMI2 must go too
    assert ("-DGGML_BMI2=OFF" in args) is ((system, machine) == ("Darwin", "x86_64"))


@pytest.mark.parametrize("system, machine, backend", [
    ("Linux", "x86_64", "vulkan"), ("Windows", "AMD64", "vulkan"), ("Darwin", "arm64", "metal"),
    ("Darwin", "x86_64", "cpu")])
def test_the_shipped_builds_carry_a_gpu_backend(system, machine, backend, monkeypatch):
    """Vulkan beside the CPU variants on Linux and Windows (one build for NVIDIA, AMD and
    Intel GPUs), Metal on Apple silicon; CUDA as an option; the wheel cache keyed by it."""
    monkeypatch.setattr(build, "SYSTEM", system)
    monkeypatch.setattr(build.platform, "machine", lambda: machine)
    assert backends.default_backend(system, machine) == backend
    args = build.llama_cmake_args(backend)
    assert ("-DGGML_VULKAN=ON" in args) is (backend == "vulkan")
    assert ("-DGGML_METAL=OFF" in args) is (backend == "cpu" and system == "Darwin")
    if system != "Darwin":
        cuda = build.llama_cmake_args("cuda")
        assert "-DGGML_CUDA=ON" in cuda and "-DGGML_BACKEND_DL=ON" in cuda
        assert any(a.startswith("-DCMAKE_CUDA_ARCHITECTURES=") for a in cuda)
        with pytest.raises(SystemExit):
            build.llama_cmake_args("metal")
    monkeypatch.setattr(build, "BACKEND", "vulkan")
    vulkan_dir = build._wheel_dir()
    monkeypatch.setattr(build, "BACKEND", "cpu")
    assert build._wheel_dir() != vulkan_dir  # never a CPU-only wheel for a Vulkan build


def test_the_build_machine_gets_what_vulkan_needs():
    """glslc and the headers to compile the shaders, lavapipe to run them in the smoke test."""
    out = subprocess.run([sys.executable, str(ROOT / "installers" / "build.py"), "deb",
                          "--backend", "vulkan", "--list-packages"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert {"glslc", "libvulkan-dev", "spirv-headers", "mesa-vulkan-drivers",
            "vulkan-tools"} <= set(out)


def test_constraints_pin_every_version():
    lines = [line.strip() for line in (ROOT / "installers" / "constraints.txt").read_text()
             .splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all("==" in line for line in lines)
    names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    assert {"pyside6", "lancedb", "pyarrow", "llama-cpp-python", "pyinstaller"} <= names
    assert f"llama_cpp_python=={build.LLAMA_VERSION}" in lines


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(DESKTOP_FILE)
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Name"] == "Semdex"
    assert d["Exec"].split()[0] == "semdex" and d["Icon"] == app_info.APP_ID
    assert d["Terminal"] == "false"
    assert len([c for c in d["Categories"].split(";") if c]) == 1  # one main category
    if shutil.which("desktop-file-validate"):
        proc = subprocess.run(["desktop-file-validate", str(DESKTOP_FILE)],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and "error" not in proc.stdout.lower(), proc.stdout


def test_appstream_metainfo(tmp_path):
    text = build.metainfo("1.2.3")
    assert "@VERSION@" not in text and "@DATE@" not in text
    tree = ET.fromstring(text)
    assert tree.findtext("id") == app_info.APP_ID
    assert tree.find("launchable").text == DESKTOP_FILE.name
    assert tree.find("releases/release").get("version") == "1.2.3"
    assert tree.findtext("project_license") == app_info.LICENSE
    if shutil.which("appstreamcli"):
        path = tmp_path / METAINFO.name
        path.write_text(text)
        proc = subprocess.run(["appstreamcli", "validate", "--no-net", "--pedantic", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_macos_info_plist():
    plist = app_info.info_plist("1.2.3")
    back = plistlib.loads(plistlib.dumps(plist))
    assert back["CFBundleIdentifier"] == app_info.APP_ID
    assert back["CFBundleShortVersionString"] == back["CFBundleVersion"] == "1.2.3"
    assert back["NSHighResolutionCapable"] is True
    assert back["NSRequiresAquaSystemAppearance"] is False  # dark mode follows the system
    assert back["LSMinimumSystemVersion"] == app_info.MIN_MACOS
    # macOS asks the person before the app reads these folders: each needs its reason
    for key in ("NSDocumentsFolderUsageDescription", "NSDesktopFolderUsageDescription",
                "NSDownloadsFolderUsageDescription"):
        assert back[key]


def test_the_smoke_test_pdf_is_a_real_pdf():
    reader = PdfReader(io.BytesIO(build._tiny_pdf(build.PDF_TEXT)))
    assert len(reader.pages) == 1
    assert build.PDF_TEXT in reader.pages[0].extract_text()


def test_the_smoke_queries_name_files_that_it_writes():
    assert set(build.QUERIES.values()) == set(build.NOTES) | {"lighthouse.pdf"}


def test_lintian_overrides_give_their_reasons():
    lines = (LINUX / "lintian-overrides").read_text().splitlines()
    tags = [line for line in lines if line and not line.startswith("#")]
    assert tags and all(line.startswith("semdex: ") for line in tags)
    assert lines[0].startswith("#")  # the reason comes first, beside them


def test_build_refuses_to_cross_compile(capsys):
    other = {"linux": "nsis", "win32": "deb", "darwin": "deb"}[sys.platform]
    with pytest.raises(SystemExit, match="does not cross-compile"):
        build.main([other])
