"""PyNvVideoCodec (NVDEC and NVENC), as the NVDEC frame decoder (nvdec.py) and NVENC re-encoding
(reencode.py) load it and hand it torch's CUDA context."""

from __future__ import annotations

import ctypes
import importlib
from typing import Any

# What `import PyNvVideoCodec` raises where it cannot be used: ImportError when it is not
# installed or its extension module cannot be loaded; RuntimeError from its __init__ when the
# driver's NVENC library is missing ("Failed to load NVENC library: libnvidia-encode.so.1") or
# too old; OSError from a library loader outside those.
IMPORT_ERRORS = (ImportError, OSError, RuntimeError)


def import_pynvvideocodec() -> tuple[Any, str | None]:
    """(PyNvVideoCodec, None), or (None, why it cannot be imported here)."""
    try:
        return importlib.import_module("PyNvVideoCodec"), None
    except IMPORT_ERRORS as e:
        return None, f"{type(e).__name__}: {e}"


def current_context() -> int:
    """The calling thread's CUcontext (torch's: the device's primary context, current once torch
    has made a stream or tensor on it), for the binding's `cudacontext` arguments."""
    libcuda = ctypes.CDLL("libcuda.so.1")
    handle = ctypes.c_void_p()
    result = libcuda.cuCtxGetCurrent(ctypes.byref(handle))
    if result != 0:
        raise RuntimeError(f"cuCtxGetCurrent failed with CUresult {result}")
    return int(handle.value or 0)
