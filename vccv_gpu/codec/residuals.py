"""Residual frames: the RGB residual of each residual source of a clip's plan, resized.

A source is a tuple of frames (display indices) whose residuals are summed; an empty one gives
zeros. Two ways to the same float16 [N, 3, size, size] tensor, bit-exact with each other:

* "parser" (`ParserResiduals`, CPU devices): the parser rebuilds each frame's Y/U/V residual
  planes (`Stream.residual`) and `resample.residual_from_planes` resizes them and applies the
  stream's matrix, on the CPU.
* kernels (`KernelResiduals`, CUDA devices): the parser's compact coefficients
  (`Stream.coefficients`) of every frame the clip needs are concatenated into one pinned int16
  buffer and copied to the device once; `kernels.reconstruct_residual` (Triton on CUDA)
  inverse-transforms each frame into the same planes there, and the same resampling follows.

Both work in two steps so that the parsing overlaps the decoding of the frames: `prepare`
(parsing, in a worker thread: the parser releases the GIL) and `finish` (on the caller's thread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .colour import rgb_matrix
from .resample import residual_from_planes
from .stream import Stream

__all__ = [
    "RESIDUAL_BACKENDS",
    "HostCoefficients",
    "KernelResiduals",
    "ParserResiduals",
    "gather_coefficients",
    "residual_planes",
    "residual_builder",
    "residuals_on_device",
    "summed_residual",
]

# "parser": on the CPU; "kernels": the kernels' own choice ($VCCV_BACKEND, else Triton on CUDA);
# "reference", "triton": that kernel backend.
RESIDUAL_BACKENDS = ("parser", "kernels", "reference", "triton")


def _matrix(stream: Stream) -> np.ndarray:
    return rgb_matrix(stream.sequence.get("matrix_coefficients"), bool(stream.sequence.get("full_range")))


def summed_residual(stream: Stream, indices: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Y/U/V residual planes (coded size) of the sum of the residuals of `indices` (at least
    one): the parser's int16 planes for one frame, int32 for a sum."""
    planes: list[torch.Tensor] = []
    for i in indices:
        r = stream.residual(i)
        if not planes:
            planes = [torch.from_numpy(p) for p in (r.y, r.u, r.v)]
            continue
        planes = [a.to(torch.int32) + torch.from_numpy(b) for a, b in zip(planes, (r.y, r.u, r.v))]
    return tuple(planes)


@dataclass
class HostCoefficients:
    """The coefficient buffers of a clip's residual frames, concatenated in one int16 tensor
    (pinned for a CUDA copy); blocks[i] = (offset, n4, n8) of frame i's buffer in it."""

    buffer: Tensor
    blocks: dict[int, tuple[int, int, int]]


def gather_coefficients(stream: Stream, frames: list[int], pin: bool) -> HostCoefficients:
    """Parses `frames` (display indices) and concatenates their `Coefficients.data`."""
    parts: list[np.ndarray] = []
    blocks: dict[int, tuple[int, int, int]] = {}
    offset = 0
    for i in dict.fromkeys(frames):
        c = stream.coefficients(i)
        blocks[i] = (offset, len(c.positions4), len(c.positions8))
        parts.append(c.data)
        offset += c.data.size
    buffer = torch.empty(offset, dtype=torch.int16, pin_memory=pin)
    if parts:
        np.concatenate(parts, out=buffer.numpy())
    return HostCoefficients(buffer, blocks)


def residual_planes(host: HostCoefficients, sources: list[tuple[int, ...]], coded_width: int, coded_height: int,
                    device: torch.device | str, backend: str | None = None) -> dict[tuple[int, ...], list[Tensor]]:
    """int32 Y/U/V planes (coded size) on `device` for each distinct non-empty source: the sum of
    its frames' residuals, reconstructed by `kernels.reconstruct_residual` from one host-to-device
    copy of `host.buffer`."""
    from .. import kernels  # only the device path needs the kernels package

    device = torch.device(device)
    data = host.buffer.to(device, non_blocking=True)  # the clip's one host-to-device copy
    out: dict[tuple[int, ...], list[Tensor]] = {}
    for src in dict.fromkeys(sources):
        if not src:
            continue
        total: list[Tensor] | None = None
        for i in src:
            offset, n4, n8 = host.blocks[i]
            length = 16 * n4 + 64 * n8 + 3 * (n4 + n8)
            planes = kernels.reconstruct_residual(data[offset:offset + length], n4, n8, coded_width, coded_height,
                                                  backend=backend)
            if total is None:
                total = [p.to(torch.int32) for p in planes]
            else:
                for acc, p in zip(total, planes):
                    acc += p
        out[src] = total
    return out


def residuals_on_device(stream: Stream, sources: list[tuple[int, ...]], size: int, keep_aspect: bool,
                        device: torch.device | str, backend: str | None = None,
                        host: HostCoefficients | None = None) -> Tensor:
    """float16 [N, 3, size, size]: the RGB residual of each source (a tuple of frames, summed;
    empty: zeros), as `parser_residuals` makes them, computed on `device`. `host`: the
    clip's coefficients if already gathered (else parsed here)."""
    device = torch.device(device)
    if host is None:
        frames = [i for src in sources for i in src]
        host = gather_coefficients(stream, frames, pin=device.type == "cuda")
    matrix = _matrix(stream)
    planes = residual_planes(host, sources, stream.coded_width, stream.coded_height, device, backend)
    small: dict[tuple[int, ...], Tensor] = {}
    for src in dict.fromkeys(sources):
        if not src:
            small[src] = torch.zeros(3, size, size, dtype=torch.float16, device=device)
            continue
        small[src] = residual_from_planes(*planes[src], matrix, stream.height, stream.width, size,
                                          keep_aspect).to(torch.float16)
    return torch.stack([small[src] for src in sources])


class ParserResiduals:
    """The "parser" way: residuals computed on the CPU (then moved to the device)."""

    def prepare(self, stream: Stream, sources: list[tuple[int, ...]], size: int, keep_aspect: bool,
                device: torch.device) -> dict[tuple[int, ...], Tensor]:
        # One task for all residuals: splitting them over the pool measured slower.
        matrix = _matrix(stream)
        return {src: (residual_from_planes(*summed_residual(stream, src), matrix, stream.height, stream.width, size,
                                           keep_aspect) if src else torch.zeros(3, size, size)).to(torch.float16)
                for src in dict.fromkeys(sources)}

    def finish(self, prepared: dict[tuple[int, ...], Tensor], stream: Stream, sources: list[tuple[int, ...]],
               size: int, keep_aspect: bool, device: torch.device) -> Tensor:
        return torch.stack([prepared[src] for src in sources]).contiguous().to(device)


class KernelResiduals:
    """The kernels' way: coefficients parsed on the CPU, residuals rebuilt on the device.
    backend: the kernels' (see `kernels.resolve_backend`; None: $VCCV_BACKEND, else auto)."""

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend

    def prepare(self, stream: Stream, sources: list[tuple[int, ...]], size: int, keep_aspect: bool,
                device: torch.device) -> HostCoefficients:
        return gather_coefficients(stream, [i for src in sources for i in src], pin=device.type == "cuda")

    def finish(self, prepared: HostCoefficients, stream: Stream, sources: list[tuple[int, ...]], size: int,
               keep_aspect: bool, device: torch.device) -> Tensor:
        return residuals_on_device(stream, sources, size, keep_aspect, device, self.backend, prepared)


def residual_builder(name: str) -> ParserResiduals | KernelResiduals:
    """The way to the residuals named `name` (one of RESIDUAL_BACKENDS)."""
    if name not in RESIDUAL_BACKENDS:
        raise ValueError(f"residual_backend must be one of {RESIDUAL_BACKENDS}, got {name!r}")
    if name == "parser":
        return ParserResiduals()
    return KernelResiduals(None if name == "kernels" else name)
