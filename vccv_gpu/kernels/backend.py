"""The backend: which implementation of the package's ops runs, one setting for all of them.

- `triton`: the fused Triton kernels (on CUDA; on CPU tensors only with TRITON_INTERPRET=1 set
  before the kernels are first used, slow: for tests).
- `reference`: their plain-PyTorch references.
- `literal`: the model's encoder recomputes the paper's equations at every decoding step, as
  written (see `vccv_gpu.model.rae`); ops without such a form (residual reconstruction) run their
  reference.
- `auto`: triton for CUDA tensors when Triton is installed, else reference.

Every dispatching op, the model and the command lines take a `backend`; None falls back to the
environment variable VCCV_BACKEND, then to auto.
"""

from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS: tuple[str, ...] = ("auto", "triton", "reference", "literal")
ENV_VAR = "VCCV_BACKEND"

__all__ = ["BACKENDS", "ENV_VAR", "resolve_backend", "triton_interpreting"]


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_backend(requested: str | None = None, device: torch.device | str = "cpu") -> str:
    """"triton", "reference" or "literal" for tensors on `device`, from `requested`, else
    $VCCV_BACKEND, else auto. Raises ValueError for an unknown name, RuntimeError for Triton where
    it cannot run."""
    name = requested or os.environ.get(ENV_VAR) or "auto"
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name in ("reference", "literal"):
        return name
    device = torch.device(device)
    has_triton = importlib.util.find_spec("triton") is not None
    if name == "auto":
        return "triton" if device.type == "cuda" and has_triton else "reference"
    if not has_triton:
        raise RuntimeError("the triton backend needs the `triton` package")
    if device.type != "cuda" and not triton_interpreting():
        raise RuntimeError(f"Triton kernels need CUDA tensors (got {device.type}); on the CPU set "
                           "TRITON_INTERPRET=1 before first use to run them interpreted")
    return "triton"
