"""PyNvVideoCodec (NVDEC and NVENC), as the NVDEC frame decoder (nvdec.py) and NVENC re-encoding
(reencode.py) load it and hand it torch's CUDA context."""

from __future__ import annotations

import ctypes
import functools
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
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


@functools.cache
def _driver() -> Any:
    return ctypes.CDLL("libcuda.so.1")


def _check(result: int, call: str) -> None:
    if result != 0:
        raise RuntimeError(f"{call} failed with CUresult {result}")


def _current() -> int:
    handle = ctypes.c_void_p()
    _check(_driver().cuCtxGetCurrent(ctypes.byref(handle)), "cuCtxGetCurrent")
    return int(handle.value or 0)


def torch_context(gpu_id: int) -> int:
    """torch's CUcontext on GPU `gpu_id` (the device's primary context: torch uses the runtime API),
    for the binding's `cudacontext` arguments. Asked for by device, not read as the thread's
    current context: a failed PyNvVideoCodec call can leave a context of its own current (seen
    on an H100, whose missing NVENC made CreateEncoder fail; the next call got "cudastream input
    argument does not correspond to cudacontext argument")."""
    driver = _driver()
    device, handle = ctypes.c_int(), ctypes.c_void_p()
    _check(driver.cuDeviceGet(ctypes.byref(device), gpu_id), "cuDeviceGet")
    _check(driver.cuDevicePrimaryCtxRetain(ctypes.byref(handle), device), "cuDevicePrimaryCtxRetain")
    _check(driver.cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease")  # torch holds it
    return int(handle.value or 0)


@contextmanager
def keep_current_context(on_cuda: bool = True) -> Iterator[None]:
    """Gives the calling thread its current CUDA context back after the block, however it ends.
    PyNvVideoCodec pushes contexts of its own and may leave one current when it fails; torch's
    runtime calls in this thread would then run in that context, where torch's memory is not
    mapped (on an H100, every later test of the process failed and one aborted)."""
    if not on_cuda:
        yield
        return
    before = _current()
    try:
        yield
    finally:
        if _current() != before:
            _check(_driver().cuCtxSetCurrent(ctypes.c_void_p(before)), "cuCtxSetCurrent")
