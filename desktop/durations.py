"""Durations as people read them: the CLI and the window show times left and taken the same way."""

from __future__ import annotations


def format_duration(seconds: float | None, *, compact: bool = False) -> str:
    """A time left or taken: "2 min 05 s" for the window, "2m05s" (compact) for a terminal."""
    if seconds is None:
        return "--" if compact else "…"
    s = int(seconds)
    if s >= 3600:
        hours, minutes = s // 3600, s % 3600 // 60
        return f"{hours}h{minutes:02d}m" if compact else f"{hours} h {minutes:02d} min"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s" if compact else f"{s // 60} min {s % 60:02d} s"
    return f"{s}s" if compact else f"{s} s"
