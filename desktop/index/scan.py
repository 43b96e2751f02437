"""Walk a folder and list the files Semdex can read, cheaply (one stat each, no reads).

Hidden entries, version-control folders, dependency trees and virtual environments are never
indexed; folder symlinks are not followed, so a symlink loop cannot hang the walk. Folders that
cannot be listed are reported, not fatal.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from desktop.extract import kind_for

EXCLUDED_DIRS = frozenset({
    "node_modules", "__pycache__", "site-packages", "venv", "env", "bower_components",
    "$recycle.bin", "system volume information",
})


@dataclass(frozen=True)
class FileStat:
    path: str
    size: int
    mtime_ns: int
    kind: str


@dataclass(frozen=True)
class ScanProblem:
    path: str
    reason: str
    folder: bool = True  # a folder that cannot be listed (its files' index is kept)


def is_excluded_name(name: str, patterns: Iterable[str] = ()) -> bool:
    if name.startswith(".") or name.lower() in EXCLUDED_DIRS:
        return True
    return _matcher(tuple(patterns))(name)


@functools.lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """fnmatch against any of the patterns, as one compiled expression (a walk asks for every
    entry of a 50,000-file library: one match each, not one per pattern)."""
    if not patterns:
        return lambda _name: False
    rx = re.compile("|".join(f"(?:{fnmatch.translate(os.path.normcase(p))})" for p in patterns))
    return lambda name: rx.match(os.path.normcase(name)) is not None


# what is wrong with a path, said the same way by a full scan and a scoped one
BAD_NAME = "name is not valid UTF-8 (rename it to index it)"
BROKEN_LINK = "broken link (its target does not exist)"
NOT_REGULAR = "not a regular file (a pipe, socket or device)"


def _unreadable(exc: OSError) -> str:
    return f"cannot be read ({exc.strerror or exc})"


def is_venv(path: str) -> bool:
    """A Python virtual environment (never indexed: thousands of files no one wrote)."""
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


def scan_folder(root: str, patterns: Iterable[str] = ()) -> Iterator[FileStat | ScanProblem]:
    """Yield every supported file under root (and a ScanProblem for what cannot be listed)."""
    patterns = tuple(patterns)
    excluded_path = _matcher(patterns)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            yield ScanProblem(folder, f"folder cannot be read ({exc.strerror or exc})")
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            if is_excluded_name(entry.name, patterns):
                continue
            try:
                if not _utf8_name(entry.name):
                    # Such a path cannot be stored, shown or put in JSON: report it, go on.
                    if entry.is_dir(follow_symlinks=False) or kind_for(entry.name):
                        yield ScanProblem(displayable(entry.path), BAD_NAME, folder=False)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not is_venv(entry.path):
                        stack.append(entry.path)
                    continue
                kind = kind_for(entry.name)
                if kind is None:
                    continue
                if excluded_path(entry.path):
                    continue
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                if _is_link(entry):
                    yield ScanProblem(entry.path, BROKEN_LINK,
                                      folder=False)
                continue  # vanished since the listing: nothing to index
            except OSError as exc:  # a link loop, a file that cannot even be looked at
                yield ScanProblem(entry.path, _unreadable(exc),
                                  folder=False)
                continue
            if not stat.S_ISREG(st.st_mode):
                # FIFOs, sockets, devices would block or mislead: never opened, but reported
                yield ScanProblem(entry.path, NOT_REGULAR,
                                  folder=False)
                continue
            yield FileStat(entry.path, st.st_size, st.st_mtime_ns, kind)


def _utf8_name(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def displayable(path: str) -> str:
    """The path with undecodable bytes shown as U+FFFD, safe to print, store and serialise."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace") \
        if not _utf8_name(path) else path


def _is_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def stat_file(path: str) -> FileStat | None:
    """The FileStat of one supported regular file, or None (gone, unsupported, not a file)."""
    name = os.path.basename(path)
    kind = kind_for(name)
    if kind is None or not _utf8_name(name):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileStat(path, st.st_size, st.st_mtime_ns, kind)


def excluded_path(path: str, root: str, patterns: Iterable[str] = ()) -> bool:
    """Whether scan_folder(root) would pass over path: an excluded name on the way down, a
    folder on the way that is a virtual environment, or a file matching a path pattern."""
    patterns = tuple(patterns)
    rel = os.path.relpath(path, root)
    if rel == ".":
        return False
    parts = rel.split(os.sep)
    if rel.startswith("..") or any(is_excluded_name(part, patterns) for part in parts):
        return True
    folder = root
    for part in parts[:-1]:
        folder = os.path.join(folder, part)
        if is_venv(folder):
            return True
    return any(fnmatch.fnmatch(path, p) for p in patterns) and kind_for(parts[-1]) is not None


def scan_path(path: str, root: str, patterns: Iterable[str] = ()
              ) -> Iterator[FileStat | ScanProblem]:
    """What scan_folder(root) yields for this one path (a file, or a whole folder below root).

    For the paths a watcher saw change: the same files, the same problems (a name that is not
    UTF-8, a broken link, a pipe) as a full scan would give, so a watched folder and a scanned
    one never disagree.
    """
    patterns = tuple(patterns)
    if excluded_path(path, root, patterns):
        return
    rel = os.path.relpath(path, root)
    parts = [] if rel == "." else rel.split(os.sep)
    for n, part in enumerate(parts):
        if not _utf8_name(part):  # reported where a full scan stops: at the first bad name
            bad = os.path.join(root, *parts[:n + 1])
            if os.path.lexists(bad) and (n + 1 < len(parts) or os.path.isdir(bad)
                                         or kind_for(part)):
                yield ScanProblem(displayable(bad), BAD_NAME, folder=False)
            return
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        yield ScanProblem(path, _unreadable(exc), folder=False)
        return
    if stat.S_ISDIR(lst.st_mode):
        if not (path != root and is_venv(path)):
            yield from scan_folder(path, patterns)
        return
    kind = kind_for(os.path.basename(path))
    if kind is None:
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if stat.S_ISLNK(lst.st_mode):
            yield ScanProblem(path, BROKEN_LINK, folder=False)
        return
    except OSError as exc:
        yield ScanProblem(path, _unreadable(exc), folder=False)
        return
    if not stat.S_ISREG(st.st_mode):
        yield ScanProblem(path, NOT_REGULAR, folder=False)
        return
    yield FileStat(path, st.st_size, st.st_mtime_ns, kind)
