"""How long the installed app takes to show its window, and how big the installers are.

    python bench/startup.py [--app /usr/bin/semdex] [--runs 5] [--platform xcb|offscreen]

Starts the app as a person does (`semdex` with no command, here with --smoke-test so that it
reports its milestones and quits by itself) and times, from the moment the process is
launched, until its window has painted ("shown") and until the model and the index are ready
("ready"). Each round runs a first start (a new home folder: nothing remembered, the model's
trial load included) and a later start (the same home again). The source install
(`python -m desktop`) is timed in the same rounds, alternating, for comparison. On Linux the
window goes to an Xvfb server started here, through the real xcb platform plugin.

Also prints the sizes of what installers/build.py wrote in dist/ and of the app's folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_xvfb() -> tuple[subprocess.Popen, str]:
    for n in range(90, 120):
        if Path(f"/tmp/.X11-unix/X{n}").exists():
            continue
        proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x860x24", "-nolisten",
                                 "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{n}").exists():
                return proc, f":{n}"
            time.sleep(0.05)
        proc.kill()
    raise SystemExit("could not start Xvfb")


def launch(cmd: list[str], home: Path, qpa: str, display: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    env.update(HOME=str(home), QT_QPA_PLATFORM=qpa, XDG_RUNTIME_DIR=str(home / "run"))
    (home / "run").mkdir(mode=0o700, exist_ok=True)
    if display:
        env["DISPLAY"] = display
    t0 = time.monotonic()
    proc = subprocess.Popen([*cmd, "--smoke-test"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=home)
    marks: dict[str, float] = {}
    for line in proc.stdout:
        parts = line.split()
        if parts[:1] == ["semdex-smoke:"] and len(parts) > 1 and parts[1] in ("shown", "ready"):
            marks[parts[1]] = time.monotonic() - t0
    marks["exit"] = time.monotonic() - t0
    if proc.wait(timeout=120) != 0 or "shown" not in marks:
        raise SystemExit(f"{cmd[0]} --smoke-test failed (exit {proc.returncode})")
    return marks


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_app = "/usr/bin/semdex" if Path("/usr/bin/semdex").exists() else str(
        ROOT / "build" / "pyinstaller" / "semdex" / "semdex")
    ap.add_argument("--app", default=default_app, help=f"the frozen app (default {default_app})")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--platform", default="xcb" if sys.platform.startswith("linux")
                    else "offscreen")
    ap.add_argument("--no-source", action="store_true", help="time the frozen app only")
    args = ap.parse_args()
    xvfb, display = (start_xvfb() if args.platform == "xcb" else (None, None))
    apps = {"frozen": [args.app]}
    if not args.no_source:
        apps["source"] = [sys.executable, "-m", "desktop"]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for _ in range(args.runs):
            for name, cmd in apps.items():
                with tempfile.TemporaryDirectory(prefix="semdex-start-") as tmp:
                    home = Path(tmp)
                    for kind in ("first", "later"):  # a new home, then the same again
                        m = launch(cmd, home, args.platform, display)
                        results.setdefault((name, kind), []).append(m)
    finally:
        if xvfb:
            xvfb.kill()
    print(f"$ python bench/startup.py --app {args.app} --runs {args.runs} "
          f"--platform {args.platform}")
    print(f"{'app':8} {'start':6} {'shown s (median, min-max)':28} {'ready s (median)':16}")
    for (name, kind), runs in results.items():
        shown = [r["shown"] for r in runs]
        ready = [r.get("ready", float("nan")) for r in runs]
        print(f"{name:8} {kind:6} {statistics.median(shown):5.2f} ({min(shown):.2f}-"
              f"{max(shown):.2f}){'':13} {statistics.median(ready):5.2f}")
    dist = ROOT / "dist"
    print("\nsizes:")
    folder = Path(os.path.realpath(args.app)).parent
    print(f"  {folder}: {size(folder) / 1e6:.0f} MB installed")
    for path in sorted(dist.glob("*")) if dist.is_dir() else []:
        if path.is_file() and path.suffix in (".deb", ".gz", ".exe", ".dmg"):
            print(f"  {path.name}: {size(path) / 1e6:.1f} MB")
    print(f"\n{os.cpu_count()} CPUs; {sys.platform}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
