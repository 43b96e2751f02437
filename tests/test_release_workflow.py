"""The release workflow (.github/workflows/release.yml) builds every platform's installer.

GitHub Actions can't run here, so this checks what the file asks for: the matrix covers Linux,
Windows and macOS, each row runs the project's build script with a target it knows, and
tags publish a release with the artifacts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML: installed with gguf, one of Semdex's dependencies

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
TARGETS = {"deb", "tar", "nsis", "dmg"}


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def build(workflow: dict) -> dict:
    return workflow["jobs"]["build"]


def _rows(build: dict) -> list[dict]:
    return build["strategy"]["matrix"]["include"]


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _uses(job: dict) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def test_triggers(workflow: dict):
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "v*" in on["push"]["tags"]
    assert "workflow_dispatch" in on


def test_matrix_covers_every_platform(build: dict):
    rows = {row["name"]: (row["os"], set(row["targets"].split()), row["backend"])
            for row in _rows(build)}
    assert rows == {"linux-x86_64": ("ubuntu-22.04", {"deb", "tar"}, "vulkan"),
                    "linux-x86_64-cuda": ("ubuntu-22.04", {"tar"}, "cuda"),
                    "windows-x86_64": ("windows-2022", {"nsis"}, "vulkan"),
                    "macos-arm64": ("macos-14", {"dmg"}, "metal"),
                    "macos-x86_64": ("macos-15-intel", {"dmg"}, "cpu")}
    arches = {row["os"]: row.get("arch") for row in _rows(build)}
    assert arches["macos-14"] == "arm64" and arches["macos-15-intel"] == "x86_64"
    assert len(rows) == len(_rows(build))  # one artifact name each
    assert build["runs-on"] == "${{ matrix.os }}"
    assert build["strategy"].get("fail-fast") is False


def test_every_row_runs_the_build_script(build: dict):
    for row in _rows(build):
        assert row["targets"].split() and set(row["targets"].split()) <= TARGETS, row
    runs = _runs(build)
    # one call per target of the row: deb then tar on Ubuntu; then the .deb's install test,
    # which needs root
    assert 'sudo "$(command -v python)" installers/build.py smoke dist/semdex_*.deb' in runs
    assert re.search(r"for target in \$\{\{ matrix\.targets \}\}; do\s+"
                     r'python installers/build\.py "\$target" '
                     r"--backend \$\{\{ matrix\.backend \}\}", runs), runs
    deb = next(s for s in build["steps"] if "smoke dist/semdex_*.deb" in s.get("run", ""))
    assert "contains(matrix.targets, 'deb')" in deb["if"]  # the CUDA row makes no .deb


def test_gpu_toolchains_are_installed_for_their_rows(build: dict):
    steps = {s.get("uses", "").split("@")[0]: s for s in build["steps"]}
    assert steps["jakoch/install-vulkan-sdk-action"]["if"] == "matrix.backend == 'vulkan'"
    assert steps["Jimver/cuda-toolkit"]["if"] == "matrix.backend == 'cuda'"
    linux = next(s for s in build["steps"] if s.get("if") == "runner.os == 'Linux'")
    assert "--backend ${{ matrix.backend }} --list-packages" in linux["run"]


def test_build_script_exists(build: dict):
    scripts = set(re.findall(r"[\w./-]+\.py\b", _runs(build)))
    assert scripts == {"installers/build.py"}
    for script in scripts:
        assert (ROOT / script).is_file(), f"the workflow runs {script}, which is missing"


def test_setup_steps(build: dict):
    uses = _uses(build)
    assert "actions/checkout@v4" in uses and "actions/setup-python@v5" in uses
    python = next(s for s in build["steps"] if s.get("uses") == "actions/setup-python@v5")
    assert str(python["with"]["python-version"]) == "3.11"
    cache = next(s for s in build["steps"] if s.get("uses") == "actions/cache@v4")
    assert "~/.cache/pip" in cache["with"]["path"] and "build/wheels" in cache["with"]["path"]
    assert "hashFiles('installers/constraints.txt')" in cache["with"]["key"]

    linux = next(s for s in build["steps"] if s.get("if") == "runner.os == 'Linux'")
    # the packages come from build.py itself: one list, and it names what the deb needs
    assert "installers/build.py deb --backend ${{ matrix.backend }} --list-packages" in linux["run"]
    listed = subprocess.run([sys.executable, str(ROOT / "installers" / "build.py"), "deb",
                             "--list-packages"], capture_output=True, text=True, check=True)
    for pkg in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0",
                "libegl1", "xvfb", "dpkg-dev", "lintian", "desktop-file-utils", "appstream"):
        assert pkg in listed.stdout.split(), pkg
    windows = next(s for s in build["steps"] if s.get("if") == "runner.os == 'Windows'")
    assert "choco install nsis -y" in windows["run"]


def test_artifacts_uploaded_and_released_on_tags(workflow: dict, build: dict):
    upload = next(s for s in build["steps"] if s.get("uses") == "actions/upload-artifact@v4")
    assert "${{ matrix.name }}" in upload["with"]["name"]
    # build.py's packages (its docstring): deb, tar.gz, the NSIS .exe, dmg; all of them
    assert set(upload["with"]["path"].split()) == {"dist/*.deb", "dist/*.tar.gz", "dist/*.exe",
                                                   "dist/*.dmg"}
    assert upload["with"]["if-no-files-found"] == "error"
    release = workflow["jobs"]["release"]
    assert release["needs"] == "build"
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert release["permissions"]["contents"] == "write"
    assert "actions/download-artifact@v4" in _uses(release)
    assert "softprops/action-gh-release@v2" in _uses(release)
    assert workflow["permissions"]["contents"] == "read"  # only the release job may write
