"""Semdex as a frozen app (PyInstaller) and as a source install: one set of answers.

- where Semdex's own files are (the bundled starter model, the icon);
- how to start Semdex itself as a child process (a frozen app has no ``python -m``: it is
  started with a flag that its entry point routes before anything heavy is imported);
- the environment for the programs Semdex opens (the person's PDF viewer through xdg-open,
  nvidia-smi): PyInstaller's bootloader and its Qt hook point LD_LIBRARY_PATH, QT_PLUGIN_PATH
  and friends into the bundle, and a system program that inherits them loads our libraries
  and plugins instead of its own.

Nothing here imports Qt or llama.cpp.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCES = PACKAGE_DIR / "resources"

# the hidden flags a frozen Semdex is started with as its own child (see child_command):
# the module that runs it (`python -m module` from source) and its entry point
CHILD_FLAGS = {
    "--semdex-model-check": ("desktop.models.trial_load", "run_as_child"),
    "--semdex-measure-buffers": ("desktop.models.memory", "measure_child_main"),
    "--semdex-extract": ("desktop.extract.isolated", "run_as_child"),
    "--semdex-chat-check": ("desktop.ask.chat_check", "run_as_child"),
}

# what PyInstaller's bootloader and run-time hooks set or extend with the bundle's folders
_BUNDLE_VARS = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "DYLD_FRAMEWORK_PATH", "QT_PLUGIN_PATH",
                "QML2_IMPORT_PATH", "QT_QPA_PLATFORM_PLUGIN_PATH", "PATH")


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def bundle_dir() -> Path | None:
    """The frozen app's folder of bundled files (PyInstaller's _internal), else None."""
    base = getattr(sys, "_MEIPASS", None)
    return Path(base) if is_frozen() and base else None


def resource(name: str) -> Path:
    """A file of desktop/resources (collected under the same path when frozen)."""
    return RESOURCES / name


def bundled_models_dir() -> Path | None:
    """Where a frozen build keeps the models it ships (the converted starter GGUF)."""
    base = bundle_dir()
    return base / "models" if base is not None else None


def child_command(flag: str, *args: str) -> list[str]:
    """How to start Semdex itself to run one of CHILD_FLAGS' modules with these arguments:
    `python -m module ARGS` from source, `<app> FLAG ARGS` frozen (the entry point routes the
    flag first: desktop/__main__.py, desktop/cli.py)."""
    module = CHILD_FLAGS[flag][0]
    if is_frozen():
        return [_console_executable(), flag, *args]
    return [sys.executable, "-m", module, *args]


def _console_executable() -> str:
    """The frozen executable a child runs as. On Windows the window's Semdex.exe has no
    console, so its standard streams are not set up; the console twin beside it (built from
    the same spec, installers/semdex.spec) is, and the child is started without a window."""
    exe = Path(sys.executable)
    if sys.platform == "win32":
        twin = exe.with_name("semdex-cli.exe")
        if twin.is_file():
            return str(twin)
    return str(exe)


def run_child_flag(argv: Sequence[str]) -> None:
    """If argv[0] is one of CHILD_FLAGS, run that child with the rest and exit; else return."""
    if not argv or argv[0] not in CHILD_FLAGS:
        return
    import importlib

    module, entry = CHILD_FLAGS[argv[0]]
    sys.exit(getattr(importlib.import_module(module), entry)(list(argv[1:])))


def _inside(entry: str, bundle: Path) -> bool:
    try:
        return Path(entry).resolve().is_relative_to(bundle.resolve())
    except (OSError, ValueError):
        return False


def external_env(environ: Mapping[str, str] | None = None,
                 bundle: Path | None = None) -> dict[str, str]:
    """The environment for a program that is not Semdex (a file viewer, a driver tool): the
    person's own, without what the frozen app added for itself. PyInstaller keeps the value
    it replaced as NAME_ORIG; other additions are the entries that point into the bundle."""
    env = dict(os.environ if environ is None else environ)
    bundle = bundle if bundle is not None else bundle_dir()
    if bundle is None:
        return env
    # the bootloader's own bookkeeping; and another PyInstaller app started from here must not
    # take our environment for its own
    for name in [n for n in env if n.startswith("_PYI_")]:
        del env[name]
    env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    roots = [bundle]
    if bundle.name == "Frameworks":  # a macOS .app: Contents/Resources holds the rest
        roots.append(bundle.parent)
    for name in _BUNDLE_VARS:
        original = env.pop(name + "_ORIG", None)
        if original is not None:
            env[name] = original
            continue
        if name not in env:
            continue
        kept = [e for e in env[name].split(os.pathsep)
                if e and not any(_inside(e, root) for root in roots)]
        if kept:
            env[name] = os.pathsep.join(kept)
        else:
            del env[name]
    return env
