"""The front end's frame decoders, by name.

A frame decoder turns the planned frames of a clip into small RGB tensors on a device; the
front end (`sample.sample_clip`) picks one by name and knows nothing else about it:

* "pyav": libavcodec on the CPU (`pyav_frames.PyAVDecoder`), the default off CUDA;
* "nvdec": NVDEC on the GPU, PyAV where NVDEC cannot be used (`nvdec.NvdecFrames`), the default
  on CUDA.

Others are added with `register_decoder` (the tests register stand-ins this way).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

import torch

from .demux import Source
from .nvdec import NvdecFrames
from .pyav_frames import PyAVDecoder
from .stream import Stream

__all__ = ["DECODERS", "FrameDecoder", "get_decoder", "register_decoder"]


class FrameDecoder(Protocol):
    """What the front end asks of a decoder."""

    @property
    def threads(self) -> int:
        """Threads of the pool handed to `frames` that it may keep busy."""
        ...

    def frames(self, source: Source, stream: Stream, indices: list[int], size: int, keep_aspect: bool,
               device: torch.device, pool: Executor) -> dict[int, torch.Tensor]:
        """{display index: uint8 RGB [3, size, size] on `device`} for the frames `indices` of
        `stream` (read from `source`), resized as `resample` says; raises CorruptStream naming
        the file when a frame does not come out."""
        ...


DECODERS: dict[str, FrameDecoder] = {"pyav": PyAVDecoder(), "nvdec": NvdecFrames()}


def register_decoder(name: str, decoder: FrameDecoder) -> None:
    """Makes `decoder` available as `sample_clip(..., decoder=name)` (replacing any of that name)."""
    DECODERS[name] = decoder


def get_decoder(name: str) -> FrameDecoder:
    """The decoder registered as `name`; ValueError when there is none."""
    if name not in DECODERS:
        raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {name!r}")
    return DECODERS[name]
