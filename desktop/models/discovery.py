"""Find the GGUF models already on this machine, without loading any of them.

People who try local AI often have embedding models already: downloaded through Hugging Face,
LM Studio, GPT4All or Ollama. The model picker offers those first, so nobody downloads 5 GB
twice. Each tool keeps its files its own way:

* Hugging Face cache: ``models--ORG--NAME/snapshots/REV/*.gguf`` are symlinks into ``blobs/``;
* LM Studio: ``PUBLISHER/REPO/*.gguf`` under its models folder (or ``downloadsFolder``);
* GPT4All: a flat folder of ``.gguf`` files (or the ``modelPath`` of its settings);
* Ollama: JSON manifests ``manifests/HOST/NAMESPACE/MODEL/TAG`` whose model layer names a
  blob ``blobs/sha256-HEX``, a GGUF without the extension.

Only headers are read (gguf_info), so a full scan costs milliseconds per file. Walks never
follow a symlink into a folder already seen (no loops), stop at a fixed depth, skip unreadable
folders, and a file reached by several paths (a symlink, the same blob under two names) is
reported once, with the other places in ``also_at``. Every location can be passed in, so tests
(and people with unusual setups) are not bound to this machine's home folder.
"""

from __future__ import annotations

import configparser
import errno
import json
import logging
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.models.chat_template import (
    ChatTemplate,
    ChatTemplateError,
    read_template,
)
from desktop.models.gguf_info import (
    ModelFileError,
    ModelInfo,
    as_int,
    other_parts,
    read_model_info,
    split_part,
    split_position,
)
from desktop.models.profiles import NotAnEmbedder, Profile, detect_profile

log = logging.getLogger(__name__)

SOURCES = ("semdex", "hf", "lmstudio", "gpt4all", "ollama", "folder")
SOURCE_LABELS = {
    "semdex": "Semdex", "hf": "Hugging Face cache", "lmstudio": "LM Studio",
    "gpt4all": "GPT4All", "ollama": "Ollama", "folder": "Folder",
}
MAX_DEPTH = 6  # folders below a chosen folder
MAX_FILES = 5000  # per scan: a runaway walk (a whole disk) stops here
_SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv", ".Trash",
                        "$RECYCLE.BIN", "System Volume Information"})
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass
class DiscoveredModel:
    """One model file found on the machine: usable, or the reason it is not."""

    path: Path  # the real file (symlinks resolved)
    name: str  # what the tool it came from calls it
    source: str  # one of SOURCES
    location: Path  # the path it was found at (a snapshot link, a blob, a file)
    size_bytes: int = 0  # all parts of a split model
    info: ModelInfo | None = None
    profile: Profile | None = None
    problem: str | None = None
    also_at: list[tuple[str, Path]] = field(default_factory=list)
    split_parts: int = 1
    check: Any = None  # model_check.CheckResult of a remembered failure
    chat: ChatTemplate | None = None  # not an embedder, but a chat model (its template)
    chat_problem: str | None = None  # a chat model's template that cannot be used, and why

    @property
    def usable(self) -> bool:
        return self.problem is None and self.profile is not None

    @property
    def family(self) -> str | None:
        return self.profile.family if self.profile else None

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)

    def to_dict(self) -> dict[str, object]:
        info = self.info
        return {
            "path": str(self.path), "name": self.name, "source": self.source,
            "location": str(self.location), "size_bytes": self.size_bytes,
            "usable": self.usable, "problem": self.problem, "family": self.family,
            "arch": info.arch if info else None,
            "quantization": info.quantization if info else None,
            "dims": info.embedding_length if info else None,
            "parameters": info.size_label if info else None,
            "also_at": [[s, str(p)] for s, p in self.also_at],
        }


@dataclass
class Locations:
    """Where to look, per source. Missing folders are simply skipped."""

    semdex: list[Path] = field(default_factory=list)
    hf: list[Path] = field(default_factory=list)
    lmstudio: list[Path] = field(default_factory=list)
    gpt4all: list[Path] = field(default_factory=list)
    ollama: list[Path] = field(default_factory=list)


def default_locations(home: str | os.PathLike[str] | None = None,
                      env: Mapping[str, str] | None = None,
                      platform: str | None = None) -> Locations:
    """The usual places on this kind of system. home/env/platform override the real ones."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    home_p = Path(home) if home is not None else Path.home()
    loc = Locations()

    if home is None:
        from desktop.frozen import bundled_models_dir

        bundled = bundled_models_dir()  # an installed app's starter model
        if bundled is not None and bundled.is_dir():
            loc.semdex.append(bundled)
        try:
            from desktop.models.starter import default_model_cache

            loc.semdex.append(default_model_cache())
        except Exception:  # noqa: BLE001 - platformdirs missing: no own folder then
            pass
    elif env.get("SEMDEX_MODEL_CACHE"):
        loc.semdex.append(Path(env["SEMDEX_MODEL_CACHE"]).expanduser())

    if env.get("HF_HUB_CACHE"):
        loc.hf.append(Path(env["HF_HUB_CACHE"]).expanduser())
    if env.get("HF_HOME"):
        loc.hf.append(Path(env["HF_HOME"]).expanduser() / "hub")
    if env.get("XDG_CACHE_HOME") and home is None:
        loc.hf.append(Path(env["XDG_CACHE_HOME"]) / "huggingface" / "hub")
    loc.hf.append(home_p / ".cache" / "huggingface" / "hub")

    lms_home = home_p / ".lmstudio"
    downloads = _lmstudio_downloads_folder(lms_home / "settings.json")
    if downloads:
        loc.lmstudio.append(downloads)
    loc.lmstudio += [lms_home / "models", home_p / ".cache" / "lm-studio" / "models"]

    if platform == "darwin":
        gpt = home_p / "Library" / "Application Support" / "nomic.ai" / "GPT4All"
    elif platform.startswith("win"):
        local = env.get("LOCALAPPDATA")
        base = Path(local) if local and home is None else home_p / "AppData" / "Local"
        gpt = base / "nomic.ai" / "GPT4All"
    else:
        data = env.get("XDG_DATA_HOME") if home is None else None
        gpt = (Path(data) if data else home_p / ".local" / "share") / "nomic.ai" / "GPT4All"
    custom = _gpt4all_model_path(home_p / ".config" / "nomic.ai" / "GPT4All.ini")
    if custom:
        loc.gpt4all.append(custom)
    loc.gpt4all.append(gpt)

    if env.get("OLLAMA_MODELS"):
        loc.ollama.append(Path(env["OLLAMA_MODELS"]).expanduser())
    loc.ollama.append(home_p / ".ollama" / "models")
    if home is None and platform.startswith("linux"):
        loc.ollama.append(Path("/usr/share/ollama/.ollama/models"))  # the systemd service's
    for name in ("semdex", "hf", "lmstudio", "gpt4all", "ollama"):
        setattr(loc, name, _unique_paths(getattr(loc, name)))
    return loc


def _unique_paths(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p not in out:
            out.append(p)
    return out


def _lmstudio_downloads_folder(settings: Path) -> Path | None:
    try:
        data = json.loads(settings.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    folder = data.get("downloadsFolder") if isinstance(data, dict) else None
    return Path(folder).expanduser() if isinstance(folder, str) and folder.strip() else None


def _gpt4all_model_path(ini: Path) -> Path | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(ini.read_text(encoding="utf-8", errors="replace"))
    except (OSError, configparser.Error):
        return None
    for section in parser.sections() + [parser.default_section]:
        value = parser.get(section, "modelPath", fallback=None)
        if value and value.strip():
            return Path(value.strip().strip('"')).expanduser()
    return None


# -- walking ----------------------------------------------------------------------------------


def _dir_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:  # unreadable, vanished, not a folder
        return []


def walk_gguf(root: Path, max_depth: int = MAX_DEPTH,
              seen_dirs: set[tuple[int, int]] | None = None) -> Iterator[Path]:
    """``*.gguf`` files under root (case-insensitive), breadth first; symlinked folders are
    followed once each, so a loop ends at once; hidden and tool folders are skipped."""
    seen = seen_dirs if seen_dirs is not None else set()
    key = _dir_key(root)
    if key is None or key in seen:
        return
    seen.add(key)
    queue: list[tuple[Path, int]] = [(root, 0)]
    while queue:
        folder, depth = queue.pop(0)
        for entry in _scandir(folder):
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:  # a symlink loop: reported as a broken file, never entered
                is_dir = False
            if is_dir:
                if depth >= max_depth or entry.name in _SKIP_DIRS or entry.name.startswith("."):
                    continue
                sub = Path(entry.path)
                k = _dir_key(sub)
                if k is None or k in seen:
                    continue
                seen.add(k)
                queue.append((sub, depth + 1))
            elif entry.name.lower().endswith(".gguf"):
                yield Path(entry.path)


# -- the sources ------------------------------------------------------------------------------


def _hf_models(cache: Path) -> Iterator[tuple[str, Path]]:
    for repo in _scandir(cache):
        if not repo.name.startswith("models--") or not repo.is_dir():
            continue
        parts = repo.name.split("--", 2)
        name = "/".join(p for p in parts[1:] if p)
        snapshots = Path(repo.path) / "snapshots"
        revs = _hf_revisions(Path(repo.path), snapshots)
        files = [f for rev in revs for f in walk_gguf(rev, max_depth=4)]
        many = len({f.name for f in files}) > 1
        for f in files:
            yield (f"{name} ({f.name})" if many else name), f


def _hf_revisions(repo: Path, snapshots: Path) -> list[Path]:
    """Snapshots with the one refs/main points at first (the current download)."""
    revs = [Path(e.path) for e in _scandir(snapshots) if e.is_dir()]
    try:
        main = (repo / "refs" / "main").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return revs
    return sorted(revs, key=lambda p: p.name != main)


def _publisher_models(root: Path) -> Iterator[tuple[str, Path]]:
    """LM Studio: PUBLISHER/REPO/file.gguf -> "PUBLISHER/REPO" (plus the file if several)."""
    files = list(walk_gguf(root, max_depth=4))
    by_repo: dict[Path, int] = {}
    for f in files:
        by_repo[f.parent] = by_repo.get(f.parent, 0) + 1
    for f in files:
        try:
            rel = f.parent.relative_to(root)
        except ValueError:
            rel = Path(f.parent.name)
        repo = "/".join(rel.parts) or f.stem
        yield (f"{repo} ({f.name})" if by_repo[f.parent] > 1 and rel.parts else repo), f


def _flat_models(root: Path, max_depth: int = 1) -> Iterator[tuple[str, Path]]:
    for f in walk_gguf(root, max_depth=max_depth):
        yield f.stem, f


def _ollama_models(root: Path) -> Iterator[tuple[str, Path]]:
    manifests = root / "manifests"
    blobs = root / "blobs"
    stack: list[tuple[Path, tuple[str, ...]]] = [(manifests, ())]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder, rel = stack.pop()
        key = _dir_key(folder)
        if key is None or key in seen or len(rel) > 4:
            continue
        seen.add(key)
        for entry in _scandir(folder):
            try:
                if entry.is_dir():
                    stack.append((Path(entry.path), (*rel, entry.name)))
                    continue
            except OSError:
                continue
            blob = _ollama_model_blob(Path(entry.path), blobs)
            if blob is not None:
                yield _ollama_name((*rel, entry.name)), blob


def _ollama_model_blob(manifest: Path, blobs: Path) -> Path | None:
    try:
        if manifest.stat().st_size > 1 << 20:
            return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER:
            digest = str(layer.get("digest", ""))
            m = re.fullmatch(r"sha256[:-]([0-9a-fA-F]{64})", digest)
            if m:
                return blobs / f"sha256-{m.group(1).lower()}"
    return None


def _ollama_name(parts: tuple[str, ...]) -> str:
    """registry.ollama.ai/library/MODEL/TAG -> MODEL:TAG; otherwise keep what is needed."""
    if len(parts) < 2:
        return ":".join(parts)
    *prefix, model, tag = parts
    if prefix[:2] == ["registry.ollama.ai", "library"]:
        prefix = prefix[2:]
    elif prefix[:1] == ["registry.ollama.ai"]:
        prefix = prefix[1:]
    return "/".join([*prefix, model]) + f":{tag}"


# -- putting it together ----------------------------------------------------------------------


def _examine(found: DiscoveredModel, family: str | None) -> None:
    split = split_position(found.location)
    if split and split[0] != 1:
        found.problem = (f"part {split[0]} of {split[1]} of a split model; choose part 1 "
                         f"({split_part(found.location, 1, split[1]).name})")
        return
    try:
        info = read_model_info(found.path)
    except ModelFileError as exc:
        found.problem = exc.reason
        return
    found.info = info
    found.size_bytes = info.file_size
    count = as_int(info.get("split.count"))
    if split or (count and count > 1):
        total = split[1] if split else count or 1
        found.split_parts = total
        extra, missing = other_parts(found.location, total)
        found.size_bytes += extra
        if missing:
            found.problem = (f"split model with {len(missing)} of {total} parts missing "
                             f"({', '.join(missing[:3])})")
            return
    try:
        found.profile = detect_profile(info, family)
    except NotAnEmbedder as exc:
        found.problem = str(exc)
        if info.causal and info.tensors and info.general_type in (None, "model"):
            try:  # a chat model, for Ask (or a text generator without a chat template)
                found.chat = read_template(info)
            except ChatTemplateError as why:
                found.chat_problem = str(why)


def _mark_crashed(models: list[DiscoveredModel]) -> None:
    """Files that crashed or were refused in Semdex's safe first load are not offered."""
    if not models:
        return
    from desktop.models.model_check import failures

    try:
        failed = failures([m.path for m in models])
    except Exception as exc:  # noqa: BLE001 - llama.cpp missing: nothing is remembered then
        log.warning("could not read the model checks: %s", exc)
        return
    for m in models:
        result = failed.get(m.path)
        if result is not None:
            m.problem = f"failed Semdex's trial load: {result.reason}"
            m.check = result


def _real(path: Path) -> Path | None:
    """The file a path stands for; None for a symlink loop."""
    try:
        real = path.resolve(strict=False)
    except RuntimeError:  # a loop, before Python 3.13
        return None
    except OSError as exc:
        return None if exc.errno == errno.ELOOP else path.absolute()
    try:
        real.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
    return real


def discover(folders: Iterable[str | os.PathLike[str]] = (), *,
             locations: Locations | None = None, home: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None, family: str | None = None,
             max_depth: int = MAX_DEPTH, max_files: int = MAX_FILES) -> list[DiscoveredModel]:
    """Every GGUF file in the person's folders and the usual places, each read once.

    locations=None looks in default_locations(home, env); pass Locations() to look only in
    ``folders``. family forces a profile (as --family does). Usable models come first, then
    by source and name.
    """
    loc = locations if locations is not None else default_locations(home, env)
    candidates: list[tuple[str, str, Path]] = []
    for root in loc.semdex:
        candidates += [("semdex", n, p) for n, p in _flat_models(Path(root), max_depth=2)]
    for root in loc.hf:
        candidates += [("hf", n, p) for n, p in _hf_models(Path(root))]
    for root in loc.ollama:
        candidates += [("ollama", n, p) for n, p in _ollama_models(Path(root))]
    for root in loc.lmstudio:
        candidates += [("lmstudio", n, p) for n, p in _publisher_models(Path(root))]
    for root in loc.gpt4all:
        candidates += [("gpt4all", n, p) for n, p in _flat_models(Path(root), max_depth=2)]
    seen_dirs: set[tuple[int, int]] = set()
    for folder in folders:
        root = Path(folder).expanduser()
        if root.is_file() or (root.is_symlink() and not root.is_dir()):
            candidates.append(("folder", root.stem, root))
            continue
        for f in walk_gguf(root, max_depth, seen_dirs):
            candidates.append(("folder", f.stem, f))

    by_real: dict[Path, DiscoveredModel] = {}
    for source, name, location in candidates:
        real = _real(location)
        if real is None:
            problem = "a symbolic link that points to itself (a loop)"
            real = location.absolute()
        else:
            problem = None
        known = by_real.get(real)
        if known is not None:
            # another place holding (or linking to) the same file; the same place found a
            # second way (the chosen model's folder is Semdex's own, say) is not another place
            places = {known.location.absolute(), *(p.absolute() for _, p in known.also_at)}
            if location.absolute() not in places:
                known.also_at.append((source, location))
            continue
        if len(by_real) >= max_files:
            break
        found = DiscoveredModel(path=real, name=name, source=source, location=location)
        if problem:
            found.problem = problem
        elif not real.exists():
            found.problem = ("broken link: the file it points to is missing (an unfinished "
                             "download?)" if location.is_symlink() else "file not found")
        else:
            _examine(found, family)
        by_real[real] = found
    _mark_crashed([m for m in by_real.values() if m.usable])
    order = {s: i for i, s in enumerate(SOURCES)}
    return sorted(by_real.values(),
                  key=lambda m: (not m.usable, order.get(m.source, 99), m.name.lower()))
