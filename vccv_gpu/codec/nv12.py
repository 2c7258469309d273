"""Decoders that hand out NV12 frames (NVDEC; the tests' stand-ins) as front-end decoders.

An NV12 decoder is a function (source, stream, display indices, convert, device, pool) ->
{index: convert(nv12)}, with nv12 a uint8 [height * 3/2, width] tensor on `device` that the
decoder may reuse once `convert` returns. `Nv12Frames` makes it a front-end decoder: `convert`
views the planes and `resample.frame_from_planes` converts and resizes them on the device, with
libswscale's arithmetic, so the frames equal the PyAV decoder's rgb24 ones.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor

import torch
from torch import Tensor

from .demux import Source
from .resample import frame_from_planes
from .stream import Stream

__all__ = ["Nv12Decoder", "Nv12Frames", "nv12_planes"]

Nv12Decoder = Callable[[Source, Stream, list[int], Callable[[Tensor], Tensor], torch.device, Executor],
                       dict[int, Tensor]]


def nv12_planes(nv12: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """uint8 NV12 [height * 3/2, width] (luma rows, then interleaved Cb/Cr rows) -> views of its
    Y [height, width], Cb and Cr [height/2, width/2] planes."""
    rows, width = nv12.shape[-2:]
    height = rows * 2 // 3
    if nv12.dim() != 2 or height * 3 != rows * 2 or height % 2 or width % 2:
        raise ValueError(f"expected an NV12 buffer [height * 3/2, width] with even sizes, got {list(nv12.shape)}")
    uv = nv12[height:].view(height // 2, width // 2, 2)
    return nv12[:height], uv[..., 0], uv[..., 1]


class Nv12Frames:
    """A front-end decoder made of an NV12 decoder (see the module docstring)."""

    def __init__(self, decode: Nv12Decoder, threads: int = 1) -> None:
        self.decode = decode
        self.threads = threads

    def frames(self, source: Source, stream: Stream, indices: list[int], size: int, keep_aspect: bool,
               device: torch.device, pool: Executor) -> dict[int, Tensor]:
        """{display index: uint8 RGB [3, size, size]} on `device`."""
        mc, full_range = stream.sequence.get("matrix_coefficients"), bool(stream.sequence.get("full_range"))

        def convert(nv12: Tensor) -> Tensor:
            return frame_from_planes(*nv12_planes(nv12), mc, full_range, size, keep_aspect)

        return self.decode(source, stream, indices, convert, device, pool)
