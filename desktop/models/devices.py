"""The compute devices this llama.cpp build can run a model on, and which one Semdex uses.

llama.cpp itself knows its devices: every backend the build carries (CPU, and CUDA, Vulkan,
Metal, ROCm... when built with them) registers its devices with ggml, each with a name
("Vulkan0", "CUDA1"), a description (the GPU's own name), a type (GPU, integrated GPU, CPU) and
its free and total memory, read by the backend's own API: so a Vulkan GPU of any vendor is
described as truly as an NVIDIA one. llama-cpp-python binds none of this, so it is read here
through ctypes from the libggml that libllama uses (llama_model._libllamas_ggml).

Choice (`choose`): the device the person picked in Settings (by its name), else the discrete
GPU with the most free memory, else an integrated GPU, else the processor. The same GPU seen
by two backends (an NVIDIA card under CUDA and under Vulkan) is one device, taken through the
backend listed first in PREFERRED_BACKENDS. Nothing here may fail: a problem is a note, and the
answer is then the processor.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# ggml_backend_dev_type (ggml-backend.h)
_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}
# of two backends that see the same GPU, the first listed here (the vendor's own is faster)
PREFERRED_BACKENDS = ("CUDA", "Metal", "MTL", "ROCm", "HIP", "MUSA", "SYCL", "Vulkan")
CPU = "cpu"  # the setting that keeps every layer on the processor


@dataclass(frozen=True)
class Device:
    """One ggml device: name is llama.cpp's ("Vulkan0"), description the GPU's own name."""

    name: str
    description: str
    backend: str  # "CUDA", "Vulkan", "Metal", "CPU", ...
    type: str  # "gpu" (discrete), "igpu", "cpu", "accel"
    free_bytes: int
    total_bytes: int
    device_id: str | None = None  # the PCI bus id, where the backend knows it

    @property
    def is_gpu(self) -> bool:
        return self.type in ("gpu", "igpu")

    def label(self) -> str:
        """"NVIDIA GeForce RTX 4090 (Vulkan0)", for the picker and status."""
        return f"{self.description} ({self.name})" if self.description else self.name

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "backend": self.backend,
                "type": self.type, "free_bytes": self.free_bytes,
                "total_bytes": self.total_bytes}


class _Props(ctypes.Structure):
    # struct ggml_backend_dev_props (ggml-backend.h): only the leading fields are read
    _fields_ = [("name", ctypes.c_char_p), ("description", ctypes.c_char_p),
                ("memory_free", ctypes.c_size_t), ("memory_total", ctypes.c_size_t),
                ("type", ctypes.c_int), ("device_id", ctypes.c_char_p),
                ("caps", ctypes.c_bool * 8)]


def _ggml():
    """The libggml libllama uses, its device functions typed (after the backends loaded)."""
    from desktop.models import llama_model

    lib = llama_model.ggml_library()
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_count.argtypes = []
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get_props.restype = None
    lib.ggml_backend_dev_get_props.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Props)]
    lib.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    lib.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    return lib


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace").strip() if raw else ""


def _handles() -> list[tuple[Device, int]]:
    lib = _ggml()
    out = []
    for i in range(int(lib.ggml_backend_dev_count())):
        dev = lib.ggml_backend_dev_get(i)
        if not dev:
            continue
        props = _Props()
        lib.ggml_backend_dev_get_props(dev, ctypes.byref(props))
        reg = lib.ggml_backend_dev_backend_reg(dev)
        backend = _text(lib.ggml_backend_reg_name(reg)) if reg else ""
        out.append((Device(_text(props.name), _text(props.description), backend,
                           _TYPES.get(int(props.type), "accel"), int(props.memory_free),
                           int(props.memory_total), _text(props.device_id) or None), dev))
    return out


def list_devices() -> tuple[list[Device], str]:
    """Every device of this build (the processor included), and a note when they could not
    be read."""
    try:
        from desktop.models import llama_model

        llama_model.init_backends()
        return [d for d, _ in _handles()], ""
    except Exception as exc:  # noqa: BLE001 - a missing or broken native library
        log.warning("could not list llama.cpp's devices: %s", exc)
        return [], f"llama.cpp's devices could not be read ({exc})"


def device_handle(name: str):
    """The ggml_backend_dev_t of the device of this name (for llama_model_params.devices)."""
    for dev, handle in _handles():
        if dev.name == name:
            return handle
    raise LookupError(f"llama.cpp has no device named {name}")


def _rank(backend: str) -> int:
    try:
        return PREFERRED_BACKENDS.index(backend)
    except ValueError:
        return len(PREFERRED_BACKENDS)


def gpus(devices: list[Device]) -> list[Device]:
    """The GPUs, each physical one once (through its preferred backend), best first:
    discrete before integrated, then the most free memory."""
    seen: dict[str, Device] = {}
    out: list[Device] = []
    for dev in sorted((d for d in devices if d.is_gpu), key=lambda d: _rank(d.backend)):
        if dev.device_id and dev.device_id in seen:
            continue  # the same card through a second backend
        if dev.device_id:
            seen[dev.device_id] = dev
        out.append(dev)
    return sorted(out, key=lambda d: (d.type != "gpu", -d.free_bytes, _rank(d.backend)))


@dataclass(frozen=True)
class Choice:
    """The device a model goes on (None: the processor), and why, in words."""

    device: Device | None
    why: str
    offload_supported: bool  # whether the build has any GPU backend at all

    def describe(self) -> str:
        """"Vulkan: NVIDIA GeForce RTX 4090 (Vulkan0)" or "CPU: no GPU found"."""
        if self.device is None:
            return f"CPU: {self.why}" if self.why else "CPU"
        return f"{self.device.backend}: {self.device.label()}"

    def to_dict(self) -> dict:
        d = self.device
        return {"backend": d.backend if d else "CPU", "device": d.name if d else CPU,
                "description": d.description if d else "", "text": self.describe(),
                "why": self.why, "free_bytes": d.free_bytes if d else 0,
                "total_bytes": d.total_bytes if d else 0}


def choose(devices: list[Device], wanted: str | None, offload_supported: bool) -> Choice:
    """The device for a model: `wanted` (a device name, or "cpu"), else the best GPU."""
    found = gpus(devices)
    if wanted == CPU:
        return Choice(None, "as set in Settings", offload_supported)
    if wanted:
        for dev in devices:
            if dev.name == wanted and dev.is_gpu:
                return Choice(dev, "as set in Settings", offload_supported)
        if found:
            return Choice(found[0], f"{wanted}, set in Settings, is not here: the best GPU "
                          "instead", offload_supported)
        return Choice(None, f"{wanted}, set in Settings, is not here", offload_supported)
    if not offload_supported:
        return Choice(None, "no GPU backend in this build", False)
    if not found:
        return Choice(None, "no GPU found", True)
    best = found[0]
    if len(found) == 1:
        why = "the only GPU"
    elif best.type == "gpu":
        why = f"the discrete GPU with the most free memory, of {len(found)}"
    else:
        why = f"the integrated GPU with the most free memory, of {len(found)}"
    return Choice(best, why, True)
