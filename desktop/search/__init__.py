"""Answering a query: the core search (query.py), how hits are shown (display.py), and finding a
passage again in a file's text (locate.py). The same for the command line and the window."""

from desktop.search.query import MODES, RRF_K, Hit, search, search_vector, snippet

__all__ = ["MODES", "RRF_K", "Hit", "search", "search_vector", "snippet"]
