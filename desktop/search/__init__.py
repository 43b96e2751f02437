"""Answering a query, the same for the command line and the window: what a search is
(query.py: modes, filters, the hit), how it is ranked (rank.py), how hits are shown
(display.py), and finding a passage again in a file's text (locate.py).

`search` and `search_vector` are loaded on first use: they need LanceDB and llama.cpp, and the
rest of the package is imported by the CLI before it knows whether it will search.
"""

from typing import Any

from desktop.search.display import snippet
from desktop.search.query import MODES, NO_FILTER, RRF_K, TYPE_GROUPS, Filters, Hit, Query

__all__ = ["MODES", "NO_FILTER", "RRF_K", "TYPE_GROUPS", "Filters", "Hit", "Query", "search",
           "search_vector", "snippet"]


def __getattr__(name: str) -> Any:
    if name in ("search", "search_vector"):
        from desktop.search import rank

        return getattr(rank, name)
    raise AttributeError(f"module 'desktop.search' has no attribute {name!r}")
