"""Semdex: search your own files by meaning, privately, on your own machine."""

__version__ = "0.1.0"
