"""One description of a model for both faces, and what "Automatic (what fits)" GPU layers loads.

The GPU is the one thing faked here (GpuInfo records: this machine has none that the build can
use); the model files, discovery, the estimates and llama.cpp's load are real.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from desktop.models import embedder as embedder_module
from desktop.models import model_check
from desktop.models.discovery import Locations, discover
from desktop.models.embedder import (
    Embedder,
    EmbedderSettings,
    auto_gpu_layers,
    load_params,
    resolve_gpu_layers,
)
from desktop.models.gguf_info import read_model_info
from desktop.models.gpu import GpuInfo
from desktop.models.memory import (
    GPU_HEADROOM_MIN,
    GPU_OVERHEAD,
    estimate,
    semdex_batch_tokens,
    verdict,
)
from desktop.models.profiles import detect_profile
from desktop.models.starter import STARTER_FILENAME, starter_location, starter_model_path
from desktop.models.survey import active_model, describe, survey
from desktop.models.units import GiB, count_text, rate_text, size_text
from tests.fixtures.tiny_gguf import write_truncated

# The keys `semdex models --json` has always printed: scripts rely on them.
ENTRY_KEYS = {"path", "name", "source", "location", "size_bytes", "usable", "active"}
INFO_KEYS = {"arch", "quantization", "dims", "context_length", "parameters", "license"}
USABLE_KEYS = {"family", "label", "pooling", "query_template", "document_template", "tasks",
               "max_tokens", "memory", "verdict", "fit"}


def _gpu(free_bytes: int, *, kind: str = "cuda", total_bytes: int = 8 * GiB,
         offload: bool | None = True, choice: str = "") -> GpuInfo:
    return GpuInfo(kind, "Test GPU" if kind != "none" else "CPU",
                   total_bytes if kind != "none" else 0, free_bytes, offload,
                   ram_total_bytes=32 * GiB, ram_available_bytes=24 * GiB, cpu_threads=4,
                   device_count=int(kind != "none"), choice=choice)


@pytest.fixture(scope="module")
def starter(starter_model: Path):
    info = read_model_info(starter_model)
    profile = detect_profile(info)
    return info, profile, semdex_batch_tokens(profile.max_tokens, None, profile.default_chunk)


def _partial_gpu(info, batch: int, layers_on_gpu: float) -> GpuInfo:
    """A GPU whose free memory holds the fixed buffers and this many layers, not all."""
    est = estimate(info, batch)
    fixed = est.compute_bytes + GPU_OVERHEAD["cuda"]
    per_layer = est.shape.avg_layer_bytes + est.kv_per_layer
    return _gpu(GPU_HEADROOM_MIN + fixed + int(layers_on_gpu * per_layer), total_bytes=4 * GiB)


# -- "Automatic (what fits)" -----------------------------------------------------------------


def test_automatic_gpu_layers_follow_the_fit_verdict(starter):
    info, _, batch = starter
    layers = info.block_count
    assert layers == 6

    n, why = auto_gpu_layers(info, batch, _gpu(7 * GiB))  # fits: every layer
    assert n == -1 and why.startswith("all 6: fits on the GPU; Test GPU: 7.0 GiB free")

    n, why = auto_gpu_layers(info, batch, _partial_gpu(info, batch, 2.5))  # 2 of 6 fit
    assert n == 2 and why.startswith("2 of 6: fits with partial offload (2 of 6 layers)")
    assert n == verdict(estimate(info, batch), _partial_gpu(info, batch, 2.5)).gpu_layers

    n, why = auto_gpu_layers(info, batch, _gpu(300 * 2**20))  # not one layer: the processor
    assert n == 0 and why.startswith("0: CPU only; Test GPU: 0.3 GiB free")

    n, why = auto_gpu_layers(info, batch, _gpu(0, kind="none", offload=False))  # no GPU
    assert (n, why) == (0, "0: CPU only; no GPU found")

    # a GPU build whose device list was read and holds no GPU: the processor
    n, why = auto_gpu_layers(info, batch, _gpu(0, kind="none", offload=True,
                                               choice="CPU: no GPU found"))
    assert (n, why) == (0, "0: CPU only; CPU: no GPU found")

    # a GPU build whose devices could not be read: no verdict, so all, as llama.cpp itself
    # would
    n, why = auto_gpu_layers(info, batch, _gpu(0, kind="none", offload=True))
    assert n == -1 and "cannot read" in why


def test_a_gpu_the_build_cannot_use_gets_no_layers(starter):
    info, _, batch = starter
    n, _ = auto_gpu_layers(info, batch, _gpu(7 * GiB, offload=False))
    assert n == 0


def test_a_setting_is_taken_as_it_is(starter):
    info, _, batch = starter
    for requested in (-1, 0, 3):
        assert resolve_gpu_layers(info, batch, requested, _gpu(0, kind="none"))[0] == requested
    n, why = resolve_gpu_layers(info, batch, None, _partial_gpu(info, batch, 2.5))
    assert n == 2 and why.startswith("automatic, 2 of 6")


def test_load_params_resolve_automatic_from_the_gpu_now(starter, monkeypatch):
    """The embedder's own path: a build that offloads, and a GPU reading (faked) that holds
    2 of the 6 layers, give n_gpu_layers 2; the trial load's child is told the same number."""
    info, profile, batch = starter
    monkeypatch.setattr(embedder_module, "gpu_offload_supported", lambda: True)
    monkeypatch.setattr(embedder_module, "gpu_now",
                        lambda device=None: _partial_gpu(info, batch, 2.5))
    params = load_params(info, profile, EmbedderSettings())
    assert params.gpu_layers == 2 and params.gpu_layers_why.startswith("automatic, 2 of 6")
    assert load_params(info, profile, EmbedderSettings(gpu_layers=-1)).gpu_layers == -1
    child = model_check._child_settings(info, profile, EmbedderSettings())
    assert child.gpu_layers == 2 and child.family == profile.family
    key = model_check.record_key(info, profile, EmbedderSettings())
    assert key == model_check.record_key(info, profile, EmbedderSettings(gpu_layers=2))


def test_the_load_logs_its_decision(starter_model, caplog):
    """On this machine's build (no GPU offload, as in CI) automatic means the processor."""
    pytest.importorskip("llama_cpp")
    if embedder_module.gpu_offload_supported():
        pytest.skip("this llama.cpp build offloads to a GPU")
    with caplog.at_level(logging.INFO, logger="desktop.models.embedder"):
        with Embedder(starter_model, EmbedderSettings()) as emb:
            assert emb.load_params.gpu_layers == 0
    assert (f"{starter_model.name}: GPU layers automatic, 0: this llama.cpp build cannot "
            "offload to a GPU") in caplog.messages


# -- the description both faces use ------------------------------------------------------------


def test_description_keeps_the_json_contract(starter_model, tmp_path):
    broken = write_truncated(starter_model, tmp_path / "broken.gguf")
    found = {m.path.name: m for m in discover([starter_model, broken], locations=Locations())}
    gpu = _gpu(0, kind="none", offload=False)
    good = describe(found[starter_model.name], gpu, active=starter_model.resolve())
    entry = good.to_dict()
    assert set(entry) == ENTRY_KEYS | INFO_KEYS | USABLE_KEYS
    assert entry["active"] and entry["usable"] and entry["family"] == "all-minilm"
    assert entry["verdict"]["placement"] == "cpu" and entry["fit"] == good.verdict.describe()
    assert entry["memory"]["batch_tokens"] == entry["max_tokens"] == 256  # what it loads with
    assert good.size_bytes == starter_model.stat().st_size
    bad = describe(found["broken.gguf"], gpu, active=starter_model.resolve())
    assert set(bad.to_dict()) == ENTRY_KEYS | {"problem"}
    assert not bad.active and not bad.usable and bad.verdict is None
    assert bad.size_bytes == broken.stat().st_size  # unreadable, but its size is known
    assert not describe(found[starter_model.name], gpu, None).active


def test_the_starter_is_in_use_when_nothing_was_chosen(starter_model, model_cache, tmp_path):
    """Not "any file whose name starts with all-MiniLM": the starter file itself."""
    assert starter_location() == starter_model_path() == model_cache / STARTER_FILENAME
    assert active_model(None) == starter_model.resolve()
    copy = tmp_path / "elsewhere" / STARTER_FILENAME
    copy.parent.mkdir()
    shutil.copy(starter_model, copy)
    where = Locations(semdex=[model_cache])
    rows = {d.model.path: d for d in survey([copy.parent], None, locations=where).models}
    assert rows[starter_model.resolve()].active and not rows[copy.resolve()].active
    rows = {d.model.path: d for d in survey([copy.parent], str(copy), locations=where).models}
    assert rows[copy.resolve()].active and not rows[starter_model.resolve()].active


def test_survey_lists_the_chosen_model_and_what_is_missing(starter_model, tmp_path):
    chosen = tmp_path / "mine" / "model.gguf"
    chosen.parent.mkdir()
    try:
        os.link(starter_model, chosen)
    except OSError:
        shutil.copy(starter_model, chosen)
    found = survey([], str(chosen), locations=Locations(), threads=3)
    assert [d.model.path for d in found.models] == [chosen.resolve()]
    assert found.models[0].active and found.gpu.cpu_threads >= 1
    keys = {s.entry.key for s in found.missing}
    assert "all-minilm-l6-v2" not in keys and "bge-small-en-v1.5" in keys  # the starter is here
    assert all(s.verdict.placement in ("gpu", "partial", "cpu", "too_big") for s in found.missing)
    assert survey([], str(chosen), list_chosen=False, locations=Locations()).models == []


# -- text for people ---------------------------------------------------------------------------


def test_sizes_counts_and_rates_read_the_same_everywhere():
    assert [size_text(n) for n in (0, 12_000, 46_000_000, 4_400_000_000)] == [
        "—", "12 kB", "46 MB", "4.4 GB"]
    assert [count_text(n) for n in (22_700_000, 7_110_000_000)] == ["23M", "7.1B"]
    assert [rate_text(r) for r in (2.54, 42.4, 456, 3127.4)] == ["2.5", "42", "460", "3,100"]
