"""Which implementation of an op runs: the Triton kernel or its plain-PyTorch reference.

Every dispatching op takes a `backend` argument; None falls back to the environment variable
VCCV_KERNELS, then to `auto` (Triton for CUDA tensors, the reference elsewhere). Triton on CPU
tensors needs TRITON_INTERPRET=1 set before the kernels are first used (slow: for tests only).
"""

from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS: tuple[str, ...] = ("auto", "triton", "reference")
ENV_VAR = "VCCV_KERNELS"

__all__ = ["BACKENDS", "ENV_VAR", "resolve_backend", "triton_interpreting"]


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_backend(requested: str | None = None, device: torch.device | str = "cpu") -> str:
    """'triton' or 'reference' for tensors on `device`, from `requested`, else $VCCV_KERNELS, else auto."""
    name = requested or os.environ.get(ENV_VAR) or "auto"
    if name not in BACKENDS:
        raise ValueError(f"kernel backend must be one of {BACKENDS}, got {name!r}")
    if name == "reference":
        return name
    device = torch.device(device)
    has_triton = importlib.util.find_spec("triton") is not None
    if name == "auto":
        return "triton" if device.type == "cuda" and has_triton else "reference"
    if not has_triton:
        raise RuntimeError("the triton kernel backend needs the `triton` package")
    if device.type != "cuda" and not triton_interpreting():
        raise RuntimeError(f"Triton kernels need CUDA tensors (got {device.type}); on the CPU set "
                           "TRITON_INTERPRET=1 before first use to run them interpreted")
    return "triton"
