"""Shared fixtures: each test its own data dir; the starter model converted once a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def starter_model(model_cache: Path) -> Path:
    """The real starter GGUF (all-MiniLM-L6-v2, F16), made by the project's own converter."""
    from desktop.starter import starter_model_path

    return starter_model_path(cache_dir=model_cache)
