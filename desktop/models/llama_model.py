"""Load a GGUF into llama.cpp with exactly the parameters Semdex needs, and no others.

llama-cpp-python's `Llama` class builds its model parameters itself and offers no way to set
`use_extra_bufts`, the switch that keeps weights out of llama.cpp's extra CPU buffer types
(the AMX and repack kernels). On CPUs with Intel AMX (Xeon Sapphire Rapids and later) the
AMX kernels of the llama.cpp that llama-cpp-python 0.3.36 builds kill the process with a
segfault on quantized weights (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, IQ4_XS: the types
`qtype_has_amx_kernels` takes; ggml-org/llama.cpp#20824) and have produced wrong results on
Q4_0/Q4_1 (llama.cpp#16315). So Semdex loads models through the library's lower-level
wrappers, with its own parameters, and turns the extra buffer types off only where they would
reach those kernels: an AMX build and a file with weights the AMX buffer type takes. That
includes F16 (the AMX buffer runs it on its own AVX-512 path, not seen to crash); on x86 no
other extra buffer type takes F16, so turning them off for an F16 file costs nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# ggml_type values of the weights llama.cpp's AMX buffer type takes (ggml-cpu/amx/amx.cpp,
# supports_op): Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, IQ4_XS (its AMX tile kernels) and F16
AMX_TYPES = frozenset({1, 2, 3, 8, 12, 13, 14, 23})

_backend_lock = threading.RLock()
_backend_ready = False
_system_info: str | None = None


def system_info() -> str:
    """llama.cpp's own list of the CPU features this build uses ("AVX2 = 1 | AMX_INT8 = 1").
    The backends are loaded first: a build with loadable CPU variants (GGML_BACKEND_DL) lists
    the features of the variant it picked for this processor only once it has picked it.
    Read once, under the lock: llama.cpp builds the text in a static string."""
    global _system_info
    import llama_cpp

    with _backend_lock:
        if _system_info is None:
            _backend_init()
            _system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
        return _system_info


def has_amx(info: str | None = None) -> bool:
    """Whether this llama.cpp build runs AMX kernels (it only does on a CPU that has AMX)."""
    return "AMX_INT8 = 1" in (system_info() if info is None else info)


def extra_bufts_safe(tensor_types: Iterable[int], info: str | None = None) -> bool:
    """False where the extra buffer types would put weights into the AMX kernels."""
    return not (has_amx(info) and any(t in AMX_TYPES for t in tensor_types))


@dataclass(frozen=True)
class LoadParams:
    n_ctx: int
    n_batch: int
    n_ubatch: int
    threads: int
    gpu_layers: int  # -1: all
    pooling: int
    extra_bufts: bool = True
    # the ggml device the offloaded layers go on ("Vulkan0"; devices.py); None: the processor
    # alone (no GPU device is given to llama.cpp at all, whatever gpu_layers says)
    device: str | None = None
    gpu_layers_why: str = field(default="", compare=False)  # for the log: set, or what fits
    compute: str = field(default="", compare=False)  # where it runs, in words (status)
    backend: str = field(default="CPU", compare=False)  # the device's backend ("Vulkan")
    # False: a generation context (a chat model): one sequence, a KV cache, next-token logits
    embeddings: bool = True


def _backend_init() -> None:
    global _backend_ready
    import llama_cpp

    with _backend_lock:
        if not _backend_ready:
            from desktop.models import llama_log

            llama_log.install()  # before the backends load: their start-up lines are logged
            llama_cpp.llama_backend_init()
            _load_backend_modules()
            _backend_ready = True


CPU_VARIANT_ENV = "SEMDEX_LLAMA_CPU_VARIANT"  # "haswell": that CPU variant, not the best one


def _lib_folder() -> str:
    import llama_cpp

    return os.path.join(os.path.dirname(os.path.abspath(llama_cpp.__file__)), "lib")


def cpu_variants() -> list[str]:
    """The CPU variants a GGML_BACKEND_DL build carries ("x64", "haswell", ...; none for an
    ordinary build, whose CPU backend is linked in)."""
    import glob

    names = set()
    for path in glob.glob(os.path.join(_lib_folder(), "*ggml-cpu-*")):
        stem = os.path.basename(path).split(".")[0]
        names.add(stem.split("ggml-cpu-", 1)[1])
    return sorted(names)


def _load_backend_modules() -> None:
    """A llama.cpp built with GGML_BACKEND_DL (the shipped app's: installers/build.py) links
    no backend in; its CPU variants (and any GPU backend) are modules beside libllama, and
    ggml picks the best CPU variant for this processor as it loads them. llama-cpp-python
    never asks for that, so without this such a build has no device at all.

    SEMDEX_LLAMA_CPU_VARIANT names one CPU variant to load instead of the best (the build's
    smoke test runs every variant this processor can run); the GPU modules load as usual."""
    import ctypes

    folder = _lib_folder()
    lib = _libllamas_ggml(folder)
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_count.argtypes = []
    if lib.ggml_backend_reg_count() > 0:  # linked in: an ordinary build
        return
    variant = os.environ.get(CPU_VARIANT_ENV, "").strip()
    if variant:
        _load_one_variant(lib, folder, variant)
    else:
        lib.ggml_backend_load_all_from_path.restype = None
        lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        lib.ggml_backend_load_all_from_path(folder.encode())
    count = lib.ggml_backend_reg_count()
    log.info("llama.cpp backends loaded from %s: %d", folder, count)
    if count == 0:
        raise RuntimeError(f"llama.cpp found no CPU backend it can run in {folder} (the "
                           "libggml-cpu-* files are missing, or a library they need is: "
                           "libgomp on Linux)")


def _load_one_variant(lib, folder: str, variant: str) -> None:
    """The named CPU variant (refused by ggml when this processor cannot run it) and every
    module that is not a CPU variant (the GPU backends)."""
    import ctypes
    import glob

    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    prefix = "ggml.dll" if sys.platform == "win32" else "libggml"
    modules = [p for p in glob.glob(os.path.join(folder, "*ggml-*"))
               if os.path.basename(p).split(".")[0] not in (f"{prefix}-base", prefix)
               and not os.path.islink(p)]
    cpu = [p for p in modules if f"ggml-cpu-{variant}." in os.path.basename(p)]
    if not cpu:
        raise RuntimeError(f"{CPU_VARIANT_ENV}={variant}: there is no such CPU variant in "
                           f"{folder} ({', '.join(cpu_variants()) or 'none'})")
    if not lib.ggml_backend_load(cpu[0].encode()):
        raise RuntimeError(f"{CPU_VARIANT_ENV}={variant}: this processor cannot run it")
    seen = set()
    for path in sorted(modules, key=len):
        stem = os.path.basename(path).split(".")[0]
        if "ggml-cpu" in stem or stem in seen:
            continue
        seen.add(stem)
        lib.ggml_backend_load(path.encode())  # (a GPU backend without its driver: skipped)


def _libllamas_ggml(folder: str):
    """The libggml that libllama itself uses. A wheel holds libggml.so and libggml.so.0 as two
    copies of one file (zip has no links); libllama loads the .so.0 (its soname), and backends
    registered in the other copy would be invisible to it. By soname, with RTLD_NOLOAD, the
    loader hands back the very copy libllama got."""
    import ctypes
    import glob

    if sys.platform.startswith("linux") and hasattr(os, "RTLD_NOLOAD"):
        for path in sorted(glob.glob(os.path.join(folder, "libggml.so.*")), key=len):
            try:
                return ctypes.CDLL(os.path.basename(path), mode=os.RTLD_NOLOAD | os.RTLD_NOW)
            except OSError:
                continue
    from llama_cpp import _ggml

    return _ggml.libggml


def init_backends() -> None:
    """llama.cpp's backends, ready for a raw llama_cpp call (a child's measurement)."""
    _backend_init()


def ggml_library():
    """The libggml that libllama uses, with its backends loaded (devices.py reads it)."""
    _backend_init()
    return _libllamas_ggml(_lib_folder())


def gpu_offload_supported() -> bool:
    """Whether this build can offload layers to a GPU (loading the backends first, once)."""
    import llama_cpp

    _backend_init()
    return bool(llama_cpp.llama_supports_gpu_offload())


def _device_list(name: str | None):
    """A NULL-terminated ggml_backend_dev_t array: the named device, or none at all."""
    import ctypes

    from desktop.models import devices

    handles = [devices.device_handle(name)] if name else []
    return (ctypes.c_void_p * (len(handles) + 1))(*handles, None)


def tokenize(vocab, text: str, *, add_special: bool, parse_special: bool = False) -> list[int]:
    """llama.cpp's tokens for ``text`` with a model's vocab (LlamaModel.vocab, VocabModel.vocab):
    ``add_special`` adds the model's BOS (and the like), ``parse_special`` reads special tokens
    written in the text as such."""
    import ctypes

    import llama_cpp
    import numpy as np

    data = text.encode("utf-8", "replace")
    n_max = len(data) + 16
    for _ in range(2):  # a second time only when llama.cpp asks for a bigger buffer
        # A numpy buffer, not `(llama_token * n_max)()`: ctypes makes (and keeps forever) a new
        # array type for every new length, and the pile of types set off full garbage
        # collections that held the GIL for 50-100 ms: the window froze while indexing.
        buf = np.empty(n_max, dtype=np.int32)
        n = llama_cpp.llama_tokenize(vocab, data, len(data),
                                     buf.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token)),
                                     n_max, add_special, parse_special)
        if n >= 0:
            return buf[:n].tolist()
        n_max = -n
    raise RuntimeError(f"llama.cpp could not tokenize a text of {len(data)} bytes")


class LlamaModel:
    """A model, one context (for embeddings, or for generation: LoadParams.embeddings) and one
    batch; close() frees them in order."""

    def __init__(self, path: str | os.PathLike[str], p: LoadParams):
        import ctypes

        import llama_cpp
        from llama_cpp import _internals

        _backend_init()
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = 0x7FFFFFFF if p.gpu_layers < 0 else p.gpu_layers
        mp.use_extra_bufts = p.extra_bufts
        # exactly one device, or none: llama.cpp would otherwise spread layers over every GPU
        # it finds (an integrated one beside the discrete one). With no device named (its list
        # could not be read) llama.cpp chooses, as it would by itself.
        self._devices = None
        if p.gpu_layers == 0 or p.device:
            self._devices = _device_list(p.device if p.gpu_layers != 0 else None)
            mp.devices = ctypes.cast(self._devices, ctypes.c_void_p)
            mp.split_mode = llama_cpp.LLAMA_SPLIT_MODE_NONE
            mp.main_gpu = 0 if p.gpu_layers != 0 else -1
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = p.n_ctx
        cp.n_batch = p.n_batch
        cp.n_ubatch = min(p.n_batch, p.n_ubatch)
        cp.n_threads = cp.n_threads_batch = p.threads
        cp.pooling_type = p.pooling
        if p.embeddings:
            cp.embeddings = True
            cp.kv_unified = True
            cp.n_seq_max = min(p.n_batch, llama_cpp.llama_max_parallel_sequences())
        else:
            cp.embeddings = False
            cp.n_seq_max = 1
        # flash attention where the device has it (llama.cpp's own default): on the CPU it
        # embeds twice as fast as the plain path, which writes out every score matrix
        # (bench/cpu_speed.py), with the same vectors (cosine 0.99999976 for the starter)
        cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        self.params = p
        self.model_params, self.context_params = mp, cp
        self._model = self._ctx = self._batch = None
        try:
            self._model = _internals.LlamaModel(path_model=os.fspath(path), params=mp,
                                                verbose=True)
            self._ctx = _internals.LlamaContext(model=self._model, params=cp, verbose=True)
            self._batch = _internals.LlamaBatch(n_tokens=p.n_batch, embd=0,
                                                n_seq_max=p.n_ctx if p.embeddings else 1,
                                                verbose=True)
        except BaseException:
            self.close()
            raise

    @property
    def ctx(self):
        return self._ctx

    @property
    def batch(self):
        return self._batch

    @property
    def vocab(self):
        return self._model.vocab

    def n_embd(self) -> int:
        return int(self._model.n_embd())

    def token_eos(self) -> int:
        return int(self._model.token_eos())

    def close(self) -> None:
        for part in ("_batch", "_ctx", "_model"):
            obj = getattr(self, part, None)
            setattr(self, part, None)
            if obj is not None:
                obj.close()


class VocabModel:
    """A model's tokenizer alone: llama.cpp's vocab_only load reads the metadata and the
    vocabulary, no weights (a remote embedder tokenizes here and embeds elsewhere)."""

    def __init__(self, path: str | os.PathLike[str]):
        import llama_cpp
        from llama_cpp import _internals

        _backend_init()
        mp = llama_cpp.llama_model_default_params()
        mp.vocab_only = True
        mp.n_gpu_layers = 0
        self._model = _internals.LlamaModel(path_model=os.fspath(path), params=mp,
                                            verbose=True)

    ctx = None

    @property
    def vocab(self):
        return self._model.vocab

    def n_embd(self) -> int:
        return int(self._model.n_embd())

    def token_eos(self) -> int:
        return int(self._model.token_eos())

    def close(self) -> None:
        model, self._model = getattr(self, "_model", None), None
        if model is not None:
            model.close()
