"""Accelerator detection: a sane answer on any machine, NVML checked where there is a GPU."""

from __future__ import annotations

import pytest

import desktop.models.gpu as gpu
from desktop.models.gpu import GpuInfo, detect, ram_bytes


def test_detect_on_this_machine_is_sane():
    info = detect()
    assert info.kind in ("cuda", "metal", "none")
    assert info.ram_total_bytes > 0 and 0 < info.ram_available_bytes <= info.ram_total_bytes
    assert info.cpu_threads >= 1
    assert info.offload_supported in (True, False, None)
    if info.kind == "none":
        assert info.total_bytes == info.free_bytes == 0 and not info.usable
        assert info.describe().startswith("CPU")
    else:
        assert info.total_bytes >= info.free_bytes > 0


def test_without_probes_it_is_cpu_only():
    info = detect(nvml=False, smi=False, llama=False)
    if gpu._is_apple_silicon():
        assert info.kind == "metal"
    else:
        assert info.kind == "none" and info.offload_supported is None and info.note == ""


def test_ram_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:   1000 kB\n"
                       "MemAvailable:    8000000 kB\n")
    assert ram_bytes(meminfo) == (16000000 * 1024, 8000000 * 1024)
    total, avail = ram_bytes(tmp_path / "missing")  # falls back to sysconf
    assert total > 0 and 0 < avail <= total


def test_a_gpu_this_build_cannot_use_is_explained(monkeypatch):
    fake = GpuInfo("cuda", "NVIDIA Test", 8 << 30, 6 << 30, None, device_count=1)
    monkeypatch.setattr(gpu, "_nvidia_nvml", lambda: (fake, ""))
    monkeypatch.setattr(gpu, "offload_supported", lambda: False)
    info = detect(smi=False)
    assert info.kind == "cuda" and info.offload_supported is False and not info.usable
    assert "CMAKE_ARGS" in info.note and "GGML_CUDA" in info.note


def test_apple_share_of_unified_memory():
    assert gpu.apple_gpu_share(16 << 30) == int((16 << 30) * 0.66)
    assert gpu.apple_gpu_share(64 << 30) == int((64 << 30) * 0.75)


def _nvml_gpu_or_skip():
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no NVIDIA driver here ({exc})")
    try:
        if pynvml.nvmlDeviceGetCount() < 1:
            pytest.skip("NVML reports no GPU")
    finally:
        pynvml.nvmlShutdown()


def test_nvml_reads_the_real_gpu():
    _nvml_gpu_or_skip()
    info, note = gpu._nvidia_nvml()
    assert info is not None and info.kind == "cuda", note
    assert info.total_bytes >= info.free_bytes > 0 and info.name
    assert detect().kind == "cuda"
