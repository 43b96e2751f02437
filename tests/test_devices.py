"""Where a model runs: llama.cpp's own device list, the choice among its GPUs, the placement the
faces report, and the fall-back from a GPU that cannot take the model.

The device list is read from this machine's real llama.cpp (CI's build has the processor
alone); the choice among several GPUs is a pure function, tested on device lists as llama.cpp
gives them. A GPU running out of memory cannot happen here, so that one test makes the GPU
load fail the way llama.cpp reports it, and the rest (the fall-back, the vectors, the note)
is real.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import desktop.models.embedder as embedder_module
from desktop.models import devices, llama_log, llama_model
from desktop.models.devices import CPU, Device, choose, gpus
from desktop.models.embedder import Embedder, EmbedderSettings, fallback_plan, out_of_memory
from desktop.models.gpu import GpuInfo, detect
from desktop.models.llama_model import LoadParams

GiB = 2**30


def dev(name, backend, kind="gpu", free=8, total=16, pci=None, description=None):
    return Device(name, description or f"{backend} card {name}", backend, kind,
                  int(free * GiB), int(total * GiB), pci)


CPU_DEV = Device("CPU", "AMD EPYC", "CPU", "cpu", 24 * GiB, 24 * GiB)


def test_this_builds_devices_are_read():
    found, note = devices.list_devices()
    assert note == ""
    cpu = [d for d in found if d.type == "cpu"]
    assert len(cpu) == 1 and cpu[0].backend == "CPU" and cpu[0].total_bytes > 0
    info = detect()
    if not llama_model.gpu_offload_supported():  # CI's build: the processor alone, said so
        assert info.kind == "none" and info.choice == "CPU: no GPU backend in this build"
        assert choose(found, None, False).describe() == "CPU: no GPU backend in this build"
    else:
        assert info.choice.startswith(("CPU: no GPU found", info.backend))


def test_the_discrete_gpu_with_the_most_free_memory_is_chosen():
    igpu = dev("Vulkan0", "Vulkan", "igpu", free=30, total=32)
    small = dev("Vulkan1", "Vulkan", free=4)
    big = dev("Vulkan2", "Vulkan", free=11)
    c = choose([CPU_DEV, igpu, small, big], None, True)
    assert c.device == big
    assert c.why == "the discrete GPU with the most free memory, of 3"
    assert c.describe() == "Vulkan: Vulkan card Vulkan2 (Vulkan2)"
    # the integrated GPU only when there is no discrete one
    assert choose([CPU_DEV, igpu], None, True).device == igpu
    assert choose([CPU_DEV], None, True).describe() == "CPU: no GPU found"


def test_one_card_seen_by_two_backends_is_one_gpu_through_its_vendors_backend():
    vk = dev("Vulkan0", "Vulkan", free=20, pci="0000:01:00.0")
    cuda = dev("CUDA0", "CUDA", free=19, pci="0000:01:00.0")
    other = dev("Vulkan1", "Vulkan", free=5, pci="0000:02:00.0")
    listed = gpus([CPU_DEV, vk, cuda, other])
    assert [d.name for d in listed] == ["CUDA0", "Vulkan1"]
    assert choose([CPU_DEV, vk, cuda, other], None, True).device == cuda


def test_the_person_can_pick_another_device_or_the_processor():
    a, b = dev("CUDA0", "CUDA", free=20), dev("CUDA1", "CUDA", free=2)
    found = [CPU_DEV, a, b]
    assert choose(found, "CUDA1", True).device == b
    assert choose(found, "CUDA1", True).why == "as set in Settings"
    assert choose(found, CPU, True).device is None
    assert choose(found, CPU, True).describe() == "CPU: as set in Settings"
    gone = choose(found, "Vulkan3", True)
    assert gone.device == a and "Vulkan3, set in Settings, is not here" in gone.why
    assert choose([CPU_DEV], "CUDA0", True).describe() == (
        "CPU: CUDA0, set in Settings, is not here")


def test_the_verdict_is_for_the_device_that_will_be_used(monkeypatch, starter_model):
    """The fit is computed against the chosen device's free memory, and Automatic offloads
    what fits there: all of the starter on a roomy card, none on a nearly full one."""
    from desktop.models.gguf_info import read_model_info
    from desktop.models.profiles import detect_profile

    info = read_model_info(starter_model)
    profile = detect_profile(info)
    roomy, full = dev("Vulkan0", "Vulkan", free=6), dev("Vulkan1", "Vulkan", free=0.25)

    def machine(device=None):
        listed = [CPU_DEV, roomy, full]
        c = choose(listed, device, True)
        d = c.device
        return GpuInfo("vulkan", d.description, d.total_bytes, d.free_bytes, True,
                       ram_total_bytes=24 * GiB, ram_available_bytes=20 * GiB, cpu_threads=2,
                       device=d.name, backend=d.backend, choice=c.describe(),
                       gpus=tuple(gpus(listed)))

    monkeypatch.setattr(embedder_module, "gpu_offload_supported", lambda: True)
    monkeypatch.setattr(embedder_module, "gpu_now", machine)
    p = embedder_module.load_params(info, profile, EmbedderSettings())
    assert (p.gpu_layers, p.device, p.backend) == (-1, "Vulkan0", "Vulkan")
    assert p.compute == "Vulkan: Vulkan card Vulkan0 (Vulkan0)"
    p = embedder_module.load_params(info, profile, EmbedderSettings(device="Vulkan1"))
    assert (p.gpu_layers, p.device) == (0, None)
    assert p.compute == "CPU: the model does not fit Vulkan card Vulkan1"


def test_the_fall_back_plan():
    p = LoadParams(n_ctx=512, n_batch=512, n_ubatch=512, threads=2, gpu_layers=-1, pooling=1,
                   device="CUDA0")
    plan = fallback_plan(p, 32)
    assert [(x.gpu_layers, x.device) for x in plan] == [(-1, "CUDA0"), (16, "CUDA0"),
                                                         (0, None)]
    assert [x.gpu_layers for x in fallback_plan(
        LoadParams(512, 512, 512, 2, 1, 1, device="CUDA0"), 32)] == [1, 0]
    assert fallback_plan(LoadParams(512, 512, 512, 2, 0, 1), 32) == [
        LoadParams(512, 512, 512, 2, 0, 1)]
    for line in ("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4096.00 MiB on device "
                 "0: cudaMalloc failed: out of memory", "unable to allocate Vulkan0 buffer",
                 "vk::Device::allocateMemory: ErrorOutOfDeviceMemory"):
        assert out_of_memory(line)
    assert not out_of_memory("invalid magic characters")


def test_a_gpu_that_runs_out_of_memory_falls_back_to_the_processor(monkeypatch, starter_model):
    """The load on the GPU fails as llama.cpp reports it (the fake: no GPU here); Semdex loads
    with half the layers, then on the processor, says so, and the vectors are the same."""
    texts = ["The tax return is due at the end of April.", "Feed the sourdough starter."]
    with Embedder(starter_model, EmbedderSettings(gpu_layers=0)) as emb:
        want = emb.embed_tokens([emb.encode_document(t) for t in texts])
    real = embedder_module.LlamaModel
    tried = []

    def gpu_that_is_full(path, params):
        tried.append((params.gpu_layers, params.device))
        if params.gpu_layers != 0:
            llama_log.take_errors()
            llama_log._errors.append("ggml_backend_cuda_buffer_type_alloc_buffer: allocating "
                                     "88.00 MiB on device 0: cudaMalloc failed: out of memory")
            raise ValueError("Failed to load model from file")
        return real(path, params)

    monkeypatch.setattr(embedder_module, "LlamaModel", gpu_that_is_full)
    monkeypatch.setattr(embedder_module, "place", lambda *a, **k: embedder_module.Placement(
        -1, None, "all, as set", "CUDA: Test GPU (CUDA0)", "CUDA"))
    with Embedder(starter_model, EmbedderSettings(gpu_layers=-1)) as emb:
        assert tried == [(-1, None), (3, None), (0, None)]
        assert emb.load_params.gpu_layers == 0 and emb.load_params.backend == "CPU"
        assert emb.fallback_note == ("all-MiniLM-L6-v2 ran out of GPU memory (CUDA: Test GPU "
                                     "(CUDA0)); it runs on the processor, more slowly")
        assert emb.load_params.compute == "CPU: the model ran out of GPU memory"
        got = emb.embed_tokens([emb.encode_document(t) for t in texts])
    assert np.allclose(got, want, atol=1e-6)


def test_a_file_the_processor_cannot_load_either_is_its_own_error(monkeypatch, tmp_path):
    """A broken file is not blamed on the GPU: the processor's own error is the one shown."""
    from desktop.models.gguf_info import ModelFileError
    from tests.fixtures.tiny_gguf import write_tiny_llama

    path = write_tiny_llama(tmp_path / "tiny.gguf")
    monkeypatch.setattr(embedder_module, "place", lambda *a, **k: embedder_module.Placement(
        -1, None, "all, as set", "CUDA: Test GPU (CUDA0)", "CUDA"))

    def always(path, params):
        llama_log.take_errors()
        llama_log._errors.append("llama_model_load: error loading model: broken "
                                 f"{params.gpu_layers}")
        raise ValueError("Failed to load model from file")

    monkeypatch.setattr(embedder_module, "LlamaModel", always)
    with pytest.raises(ModelFileError, match="broken 0"):
        Embedder(path, EmbedderSettings(gpu_layers=-1))


def test_status_names_where_the_model_runs(semdex_dirs):
    out = subprocess.run([sys.executable, "-m", "desktop", "status", "--json"],
                         capture_output=True, text=True, check=True, timeout=120)
    compute = json.loads(out.stdout)["compute"]
    if not llama_model.gpu_offload_supported():
        assert compute == {"backend": "CPU", "device": "cpu", "gpu_layers": 0,
                           "text": "CPU: no GPU backend in this build",
                           "why": "automatic, 0: this llama.cpp build cannot offload to a GPU",
                           "note": ""}
    else:
        assert compute["text"] and compute["backend"]
    out = subprocess.run([sys.executable, "-m", "desktop", "status", "--device", "cpu"],
                         capture_output=True, text=True, check=True, timeout=120)
    assert "Runs on:  CPU: " in out.stdout
