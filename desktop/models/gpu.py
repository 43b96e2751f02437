"""Which accelerator this machine has, how much memory it has free, and whether Semdex can use it.

The model picker must say, before anything is loaded, whether a model will run on the GPU, in
part, or on the processor alone. That needs three facts: the accelerator and its free memory,
the machine's RAM, and whether the installed llama-cpp-python was built with GPU offload at all
(PyPI ships only the source, and the default build is CPU-only).

Where the build offloads, llama.cpp's own device list answers (devices.py: every backend the
build carries, CUDA, Vulkan, Metal, ROCm, with each device's free memory as its backend reads
it), and the device chosen there is the one the model is loaded on. Where it does not, NVIDIA
is looked for through NVML (the optional ``nvidia-ml-py`` package, falling back to
``nvidia-smi``) and Apple silicon from the platform, only to tell the person what they are
missing. RAM comes from /proc/meminfo, sysconf or the Windows API. Nothing here may fail:
every problem becomes a plain note, and the answer is then "CPU only".
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from desktop.frozen import external_env
from desktop.models import devices
from desktop.models.devices import Device

# Apple lets the GPU use about this share of unified memory (recommendedMaxWorkingSetSize is
# about 2/3 of RAM on small machines and about 3/4 on large ones).
_APPLE_SMALL_SHARE = 0.66
_APPLE_LARGE_SHARE = 0.75
_APPLE_LARGE_RAM = 36 * 2**30


@dataclass(frozen=True)
class GpuInfo:
    """The accelerator Semdex would use, and the machine around it.

    kind: "cuda" (NVIDIA), "metal" (Apple silicon), "vulkan", "rocm"... or "none".
    total_bytes / free_bytes are the accelerator's memory (for Metal: the share of RAM the GPU
    may use; 0 when kind is "none"). offload_supported: whether this llama-cpp-python build can
    put layers on a GPU at all (None when llama_cpp could not be imported). note: a sentence
    for the person, or "". device: llama.cpp's name of the device the model goes on
    ("Vulkan0"; "" for the processor); backend: its backend ("CUDA", "Vulkan", "Metal");
    choice: where models run, in words ("Vulkan: NVIDIA GeForce RTX 4090 (Vulkan0)",
    "CPU: no GPU found"); gpus: every GPU the build can use, best first.
    """

    kind: str
    name: str
    total_bytes: int
    free_bytes: int
    offload_supported: bool | None
    note: str = ""
    ram_total_bytes: int = 0
    ram_available_bytes: int = 0
    cpu_threads: int = 1
    device_count: int = 0
    device: str = ""
    backend: str = ""
    choice: str = ""
    gpus: tuple[Device, ...] = ()

    @property
    def usable(self) -> bool:
        """A GPU that Semdex can put layers on with the installed build."""
        return self.kind != "none" and self.offload_supported is True and self.free_bytes > 0

    def describe(self) -> str:
        """One line for a status bar or `semdex models`."""
        ram = f"{self.ram_total_bytes / 2**30:.1f} GiB RAM, {self.cpu_threads} threads"
        if self.kind == "none":
            text = f"{self.choice or 'CPU only'} ({ram})"
        else:
            where = f"{self.backend}: {self.name}" if self.backend else self.name
            text = (f"{where}: {self.free_bytes / 2**30:.1f} of "
                    f"{self.total_bytes / 2**30:.1f} GiB free ({ram})")
        return f"{text}. {self.note}" if self.note else text

    def compute(self) -> dict:
        """Where a model goes, for `semdex status --json` and `semdex models --json`."""
        return {"backend": self.backend or "CPU", "device": self.device or devices.CPU,
                "description": self.name if self.device else "",
                "text": self.choice or ("CPU" if self.kind == "none" else self.name),
                "free_bytes": self.free_bytes, "total_bytes": self.total_bytes,
                "gpus": [d.to_dict() for d in self.gpus]}


def _kind(backend: str) -> str:
    return {"CUDA": "cuda", "Metal": "metal", "MTL": "metal", "Vulkan": "vulkan",
            "ROCm": "rocm", "HIP": "rocm"}.get(backend, backend.lower() or "gpu")


def from_llama(wanted: str | None, ram: tuple[int, int],
               offload: bool | None) -> GpuInfo | None:
    """The device llama.cpp's own list offers (devices.py), or None when it cannot be read."""
    found, note = devices.list_devices()
    if not found:
        return None
    choice = devices.choose(found, wanted, bool(offload))
    gpus = tuple(devices.gpus(found))
    dev = choice.device
    common = dict(offload_supported=offload, ram_total_bytes=ram[0],
                  ram_available_bytes=ram[1], cpu_threads=cpu_threads(),
                  device_count=len(gpus), choice=choice.describe(), gpus=gpus, note=note)
    if dev is None:
        return GpuInfo("none", "CPU", 0, 0, **common)
    return GpuInfo(_kind(dev.backend), dev.description or dev.name, dev.total_bytes,
                   dev.free_bytes, device=dev.name, backend=dev.backend,
                   **{**common, "note": "" if choice.why == "the only GPU" else choice.why})


def detect(*, nvml: bool = True, smi: bool = True, llama: bool = True,
           device: str | None = None) -> GpuInfo:
    """Look at this machine; never raises. The flags turn probes off (for tests). device:
    the setting (a llama.cpp device name, "cpu", or None for the best GPU)."""
    ram_total, ram_avail = ram_bytes()
    offload = offload_supported() if llama else None
    if offload:
        info = from_llama(device, (ram_total, ram_avail), offload)
        if info is not None and (info.kind != "none" or device == devices.CPU):
            return info
        if info is not None:  # a GPU build that finds no GPU: say why, if NVML knows more
            nv, nv_note = _nvidia_nvml() if nvml else (None, "")
            if nv is not None:
                return replace(info, note=(f"{nv.name} is present, but llama.cpp cannot use "
                                           "it (a driver or library is missing)"))
            return replace(info, note=nv_note or info.note)
    found: GpuInfo | None = None
    probe_note = ""  # why an NVIDIA GPU that seems present could not be read
    if nvml:
        found, probe_note = _nvidia_nvml()
    if found is None and smi:
        found, smi_note = _nvidia_smi()
        if found is not None:
            probe_note = smi_note
    if found is None and _is_apple_silicon():
        found = _apple(ram_total)
    notes = [probe_note] if probe_note else []
    if found is None:
        # (with a GPU build whose device list could not be read, where the model goes is
        # llama.cpp's own choice: no words for it here)
        found = GpuInfo("none", "CPU", 0, 0, offload,
                        choice="CPU: no GPU backend in this build" if offload is False else "")
    else:
        if found.note and found.note != probe_note:
            notes.insert(0, found.note)
        if offload is False:
            flag = "-DGGML_METAL=on" if found.kind == "metal" else "-DGGML_CUDA=on"
            notes.append("this llama-cpp-python build cannot offload to a GPU (it was built "
                         f'for the CPU only); reinstall it with CMAKE_ARGS="{flag}" to use it')
        elif offload is None and llama:
            notes.append("llama-cpp-python could not be imported, so GPU offload is unknown")
    choice = found.choice
    if found.kind != "none" and offload is False:
        choice = "CPU: no GPU backend in this build"
    return replace(found, offload_supported=offload, ram_total_bytes=ram_total,
                   ram_available_bytes=ram_avail, cpu_threads=cpu_threads(),
                   note="; ".join(notes), choice=choice)


def offload_supported() -> bool | None:
    """Whether the installed llama.cpp can offload layers to a GPU; None if it is missing.
    (Its backends are loaded first: a GGML_BACKEND_DL build has no GPU until they are.)"""
    try:
        from desktop.models.llama_model import gpu_offload_supported

        return gpu_offload_supported()
    except Exception:  # noqa: BLE001 - missing, or a broken native library
        return None


# -- NVIDIA -----------------------------------------------------------------------------------


def _nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidiactl").exists()


def _nvidia_nvml() -> tuple[GpuInfo | None, str]:
    """The first NVIDIA GPU (llama.cpp's main GPU), through NVML."""
    try:
        import pynvml
    except ImportError:
        if _nvidia_driver_present():
            return None, ("an NVIDIA GPU seems present, but nvidia-ml-py is not installed, so "
                          "its memory cannot be read")
        return None, ""
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        if _nvidia_driver_present():
            return None, f"the NVIDIA driver did not answer ({_nvml_error(exc)})"
        return None, ""
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        if count < 1:
            return None, "the NVIDIA driver reports no GPU"
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        note = f"{count} NVIDIA GPUs; Semdex uses the first" if count > 1 else ""
        return GpuInfo("cuda", str(name), int(mem.total), int(mem.free), None, note,
                       device_count=count), note
    except Exception as exc:  # noqa: BLE001
        return None, f"NVML could not read the GPU ({_nvml_error(exc)})"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110
            pass


def _nvml_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _nvidia_smi(timeout: float = 5.0) -> tuple[GpuInfo | None, str]:
    """Fallback when nvidia-ml-py is missing: the driver's own command-line tool."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None, ""
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=timeout, check=False,
            env=external_env())  # the driver's tool, not the frozen bundle's libraries
    except (OSError, subprocess.SubprocessError):
        return None, ""
    rows = [r for r in out.stdout.splitlines() if r.strip()]
    if out.returncode != 0 or not rows:
        return None, ""
    try:
        name, total, free = (part.strip() for part in rows[0].rsplit(",", 2))
        info = GpuInfo("cuda", name, int(float(total)) * 2**20, int(float(free)) * 2**20, None,
                       device_count=len(rows))
    except ValueError:
        return None, ""
    return info, "read through nvidia-smi (install nvidia-ml-py for a direct reading)"


# -- Apple silicon ----------------------------------------------------------------------------


def _is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def _apple(ram_total: int) -> GpuInfo:
    usable = apple_gpu_share(ram_total)
    return GpuInfo("metal", "Apple silicon GPU", usable, usable, None,
                   f"unified memory: the GPU may use about {usable / max(ram_total, 1):.0%} "
                   "of the RAM", device_count=1)


def apple_gpu_share(ram_total: int) -> int:
    """Bytes of unified memory the GPU may use on Apple silicon with this much RAM."""
    share = _APPLE_LARGE_SHARE if ram_total > _APPLE_LARGE_RAM else _APPLE_SMALL_SHARE
    return int(ram_total * share)


# -- RAM and processor ------------------------------------------------------------------------


def ram_bytes(meminfo: str | os.PathLike[str] = "/proc/meminfo") -> tuple[int, int]:
    """(total, available) RAM in bytes; (0, 0) when it cannot be read."""
    try:
        fields: dict[str, int] = {}
        with open(meminfo, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
                    fields[key.strip()] = int(parts[0]) * scale
        total = fields.get("MemTotal", 0)
        avail = fields.get("MemAvailable") or (
            fields.get("MemFree", 0) + fields.get("Buffers", 0) + fields.get("Cached", 0))
        if total:
            return total, min(avail, total)
    except OSError:
        pass
    if sys.platform == "win32":
        return _windows_ram()
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError):
            avail = total // 2  # macOS has no such figure; a fair guess for a desktop
        return int(total), int(min(avail, total))
    except (ValueError, OSError, AttributeError):
        return 0, 0


def _windows_ram() -> tuple[int, int]:
    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong),
                    ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong),
                    ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

    try:
        status = MemoryStatusEx()
        status.dwLength = ctypes.sizeof(MemoryStatusEx)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.ullTotalPhys), int(status.ullAvailPhys)
    except (AttributeError, OSError):
        pass
    return 0, 0


def cpu_threads() -> int:
    """Threads this process may run on (what Semdex passes to llama.cpp)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
