"""What every installer says about Semdex: one place for the spec, build.py and the tests.

Plain Python with no imports beyond the standard library: PyInstaller's spec, the build
script (run with any Python 3.10+) and the tests all import it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "Semdex"
APP_ID = "org.semdex.Semdex"  # reverse-DNS id: .desktop file, AppStream, macOS bundle id
SUMMARY = "Search your own files by meaning, privately, on your own machine"
HOMEPAGE = "https://github.com/semdex/semdex"
LICENSE = "MIT"
MAINTAINER = "Semdex developers <semdex@users.noreply.github.com>"
GUI_EXE = "semdex"  # Linux and macOS: one executable, the window with no command, else the CLI
WINDOWS_GUI_EXE = "Semdex"  # Windows: a windowed exe (no console) ...
WINDOWS_CLI_EXE = "semdex-cli"  # ... and a console one (names differ beyond case: NTFS)
MIN_MACOS = "12.0"


def version() -> str:
    text = (ROOT / "desktop" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not m:
        raise RuntimeError("no __version__ in desktop/__init__.py")
    return m.group(1)


def info_plist(ver: str | None = None) -> dict:
    """The macOS bundle's Info.plist entries (PyInstaller's BUNDLE writes the rest)."""
    ver = ver or version()
    return {
        "CFBundleName": NAME,
        "CFBundleDisplayName": NAME,
        "CFBundleIdentifier": APP_ID,
        "CFBundleShortVersionString": ver,
        "CFBundleVersion": ver,
        "CFBundlePackageType": "APPL",
        "LSApplicationCategoryType": "public.app-category.productivity",
        "LSMinimumSystemVersion": MIN_MACOS,
        "NSHighResolutionCapable": True,
        "NSRequiresAquaSystemAppearance": False,  # follow the system's dark mode
        "NSHumanReadableCopyright": f"Semdex developers, {LICENSE} licence",
        # Semdex reads the folders the person drops on it; macOS asks before the first read
        "NSDesktopFolderUsageDescription": "Semdex indexes the folders you add to it.",
        "NSDocumentsFolderUsageDescription": "Semdex indexes the folders you add to it.",
        "NSDownloadsFolderUsageDescription": "Semdex indexes the folders you add to it.",
        "NSRemovableVolumesUsageDescription": "Semdex indexes the folders you add to it.",
        "NSNetworkVolumesUsageDescription": "Semdex indexes the folders you add to it.",
    }
