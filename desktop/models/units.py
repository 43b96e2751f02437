"""Sizes, counts and rates as people read them, the same in `semdex models` and the picker.

Files are sized in decimal units (the GB a download page shows); memory in binary ones (the GiB
llama.cpp and the GPU driver report). A rate is rounded to what the estimate is good for (a
factor of about two): 3,100 tokens/s, not 3,127.4.
"""

from __future__ import annotations

KB, MB, GB = 10**3, 10**6, 10**9
MiB, GiB = 2**20, 2**30


def size_text(n: int) -> str:
    """A file size: "4.4 GB", "46 MB", "12 kB"; a dash when it is unknown (0)."""
    if n <= 0:
        return "—"
    if n >= GB:
        return f"{n / GB:.1f} GB"
    return f"{n / MB:.0f} MB" if n >= MB else f"{n / KB:.0f} kB"


def count_text(n: int) -> str:
    """A parameter count: "7.1B", "23M"."""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def rate_text(rate: float) -> str:
    """A speed estimate: "3,100", "450", "42", "2.5"."""
    if rate >= 1000:
        return f"{round(rate, -2):,.0f}"
    if rate >= 100:
        return f"{round(rate, -1):,.0f}"
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"
