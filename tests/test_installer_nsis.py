"""The Windows installer script (installers/windows/semdex.nsi): its must-haves, and a compile.

The text checks always run. When ``makensis`` is on PATH (Debian/Ubuntu package ``nsis``,
``choco install nsis`` on Windows) the script is also compiled against a dummy payload, which
is as far as a Linux machine can test a Windows installer.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NSI = ROOT / "installers" / "windows" / "semdex.nsi"
UNINST_KEY = r"Software\Microsoft\Windows\CurrentVersion\Uninstall\Semdex"


@pytest.fixture(scope="module")
def script() -> str:
    return NSI.read_text(encoding="ascii")  # ASCII keeps makensis' input charset moot


@pytest.fixture(scope="module")
def code(script: str) -> str:
    """The script without comments: whole ``;`` lines, and trailing ones after the code."""
    lines = (line for line in script.splitlines() if not line.lstrip().startswith(";"))
    return "\n".join(re.sub(r'\s+;[^"\']*$', "", line) for line in lines)


def _section(code: str, title: str) -> str:
    m = re.search(r'^Section\b[^\n]*"' + re.escape(title) + r'"[^\n]*\n(.*?)^SectionEnd',
                  code, re.M | re.S)
    assert m, f"no section {title!r}"
    return m.group(0)


def test_basics(code: str):
    for needed in ("Unicode true", "SetCompressor /SOLID lzma", "!include MUI2.nsh",
                   "!include MultiUser.nsh", "MUI_PAGE_FINISH",
                   'MUI_FINISHPAGE_RUN_TEXT "Run Semdex"', "WriteUninstaller",
                   r'CreateShortcut "$SMPROGRAMS\Semdex.lnk"'):
        assert needed in code, needed
    for name in ("VERSION", "PAYLOAD", "OUTFILE"):
        assert re.search(rf"!ifndef {name}\s*\n\s*!error", code), f"{name} is not required"
    # The icon is optional: its lines only under !ifdef ICON.
    assert re.search(r"!ifdef ICON\s*\n\s*!define MUI_ICON \"\$\{ICON\}\"", code)
    assert code.count("${ICON}") == 2


def test_per_user_by_default(code: str):
    assert re.search(r"!define MULTIUSER_EXECUTIONLEVEL Highest\b", code)
    assert re.search(r"!define MULTIUSER_INSTALLMODE_DEFAULT_CURRENTUSER\b", code)
    assert re.search(r"!define MULTIUSER_USE_PROGRAMFILES64\b", code)
    assert '!define MULTIUSER_INSTALLMODE_INSTDIR "Semdex"' in code
    assert not re.search(r"RequestExecutionLevel\s+admin", code, re.I)
    # Registry writes go to SHCTX (HKCU per-user, HKLM per-machine), never a fixed root.
    writes = re.findall(r"^\s*WriteReg\w+\s+(\S+)", code, re.M)
    assert writes and set(writes) == {"SHCTX"}


def test_windows_10_x64_checked_in_oninit(code: str):
    m = re.search(r"^Function \.onInit\n(.*?)^FunctionEnd", code, re.M | re.S)
    assert m
    assert "${RunningX64}" in m.group(1) and "${AtLeastWin10}" in m.group(1)
    assert "Abort" in m.group(1)


def test_no_file_associations(code: str):
    assert not re.search(r"\bHKCR\b|HKEY_CLASSES_ROOT|Software\\Classes|\\shell\\open", code, re.I)
    assert "APP_ASSOCIATE" not in code and "SHChangeNotify" not in code


def test_stale_files_removed_before_copy(code: str):
    main = _section(code, "Semdex (required)")
    rmdir = main.find(r'RMDir /r "$INSTDIR\_internal"')
    copy = main.find(r'File /r "${PAYLOAD}\*.*"')
    assert 0 <= rmdir < copy


def test_uninstall_entry(code: str):
    main = _section(code, "Semdex (required)")
    for value in ("DisplayName", "DisplayVersion", "DisplayIcon", "Publisher", "InstallLocation",
                  "UninstallString", "QuietUninstallString", "NoModify", "NoRepair",
                  "EstimatedSize"):
        assert re.search(rf'WriteReg\w+ SHCTX "\$\{{UNINST_KEY\}}" "{value}"', main), value
    assert f'!define UNINST_KEY "{UNINST_KEY}"' in code
    assert 'WriteRegStr SHCTX "${UNINST_KEY}" "Publisher" "Semdex"' in main
    assert "${GetSize}" in main
    uninstall = _section(code, "un.Semdex (program files, shortcuts)")
    assert 'DeleteRegKey SHCTX "${UNINST_KEY}"' in uninstall


def test_desktop_shortcut_is_optional(code: str):
    desktop = _section(code, "Desktop shortcut")
    assert desktop.startswith("Section /o ")
    assert r'"$DESKTOP\Semdex.lnk"' in desktop


def test_uninstaller_keeps_data_unless_asked(code: str):
    data = _section(code, "un.Also delete my Semdex index and settings")
    assert data.startswith("Section /o "), "deleting the index must be unticked by default"
    assert r'RMDir /r "$LOCALAPPDATA\semdex"' in data
    assert "SetShellVarContext current" in data  # the person's folder, even per-machine
    # Nothing else touches the data folder.
    elsewhere = code.replace(data, "")
    assert "$LOCALAPPDATA\\semdex" not in elsewhere
    assert "$APPDATA" not in code
    # The program part removes only what it installed; the install folder only if empty.
    main = _section(code, "un.Semdex (program files, shortcuts)")
    assert 'RMDir "$INSTDIR"' in main and 'RMDir /r "$INSTDIR"' not in main


def test_data_folder_matches_the_code(monkeypatch: pytest.MonkeyPatch):
    """Every per-user folder Semdex uses lies in %LOCALAPPDATA%\\semdex on Windows: the name
    (first part under LOCALAPPDATA, see platformdirs' Windows rules) the uninstaller deletes."""
    import platformdirs

    from desktop import paths

    calls: list[tuple[str, tuple, dict]] = []

    def fake(kind: str):
        def record(*args, **kwargs):
            calls.append((kind, args, kwargs))
            return "/nowhere"
        return record

    for kind in ("user_config_dir", "user_data_dir", "user_log_dir", "user_cache_dir"):
        monkeypatch.setattr(platformdirs, kind, fake(kind))
    for var in ("SEMDEX_CONFIG_DIR", "SEMDEX_DATA_DIR", "SEMDEX_LOG_DIR", "SEMDEX_MODEL_CACHE"):
        monkeypatch.delenv(var, raising=False)
    paths.config_dir()
    paths.default_data_dir()
    paths.log_dir()
    paths.model_cache_dir()
    kinds = {kind for kind, _, _ in calls}
    assert kinds == {"user_config_dir", "user_data_dir", "user_log_dir", "user_cache_dir"}
    for kind, args, kwargs in calls:
        appname = args[0] if args else kwargs.get("appname")
        author = args[1] if len(args) > 1 else kwargs.get("appauthor")
        assert not kwargs.get("roaming"), f"{kind} roams: not under LOCALAPPDATA"
        # Windows: LOCALAPPDATA\<author or appname>\<appname>, or LOCALAPPDATA\<appname>
        first = appname if author is False else (author or appname)
        assert first == "semdex", (kind, args, kwargs)


# --- compile with makensis, when it is installed ----------------------------------------------

def _makensis() -> str:
    found = shutil.which("makensis")
    if not found:
        pytest.skip("makensis not on PATH (apt-get install nsis / choco install nsis): "
                    "only the script text was checked")
    return found


def _tiny_ico(path: Path) -> Path:
    """A 16x16 32-bit BMP icon, the smallest valid .ico."""
    size = 16
    bmp = struct.pack("<IiiHHIIiiII", 40, size, size * 2, 1, 32, 0, size * size * 4 + size * 4,
                      0, 0, 0, 0) + b"\x00\x80\xff\xff" * (size * size) + b"\x00" * (size * 4)
    path.write_bytes(struct.pack("<HHH", 0, 1, 1)
                     + struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(bmp), 22) + bmp)
    return path


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    onedir = tmp_path / "Semdex"
    (onedir / "_internal").mkdir(parents=True)
    (onedir / "Semdex.exe").write_bytes(b"MZ dummy gui")
    (onedir / "semdex-cli.exe").write_bytes(b"MZ dummy cli")
    (onedir / "_internal" / "x.txt").write_text("dummy library\n")
    return onedir


def _compile(makensis: str, *defines: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([makensis, "-V2", "-WX", *defines, str(NSI)],
                          capture_output=True, text=True, timeout=120)


# Not "setup.exe": makensis warns about that exact name (compatibility shims), and -WX fails.
@pytest.mark.parametrize("with_icon", [False, True], ids=["no-icon", "icon"])
def test_compiles(tmp_path: Path, payload: Path, with_icon: bool):
    makensis = _makensis()
    out = tmp_path / "Semdex-0.1.0-setup.exe"
    defines = ["-DVERSION=0.1.0", f"-DPAYLOAD={payload}", f"-DOUTFILE={out}"]
    if with_icon:
        defines.append(f"-DICON={_tiny_ico(tmp_path / 'semdex.ico')}")
    done = _compile(makensis, *defines)
    assert done.returncode == 0, done.stdout + done.stderr
    data = out.read_bytes()
    assert data.startswith(b"MZ")
    assert b"NullsoftInst" in data  # the NSIS header that follows the stub


@pytest.mark.parametrize("missing", ["VERSION", "PAYLOAD", "OUTFILE"])
def test_required_defines(tmp_path: Path, payload: Path, missing: str):
    makensis = _makensis()
    out = tmp_path / "Semdex-setup.exe"
    values = {"VERSION": "0.1.0", "PAYLOAD": str(payload), "OUTFILE": str(out)}
    del values[missing]
    done = _compile(makensis, *(f"-D{k}={v}" for k, v in values.items()))
    assert done.returncode != 0
    assert f"{missing} is required" in done.stdout + done.stderr
    assert not out.exists()


def test_missing_payload_fails(tmp_path: Path):
    makensis = _makensis()
    out = tmp_path / "Semdex-setup.exe"
    done = _compile(makensis, "-DVERSION=0.1.0", f"-DPAYLOAD={tmp_path / 'absent'}",
                    f"-DOUTFILE={out}")
    assert done.returncode != 0 and not out.exists()
