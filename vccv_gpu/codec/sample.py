"""The front end: N appearance frames and N residual frames of a clip, on a device.

    from vccv_gpu import codec
    s = codec.sample_clip("clip.mp4", num_segments=20, size=224, residual="middle")
    s.iframes      # uint8   [N, 3, size, size] RGB
    s.residuals    # float16 [N, 3, size, size] RGB residual, pixel units
    s.frame_indices, s.residual_indices, s.residual_frames, s.policy, s.fps, s.duration

One pipeline for every device: the file is parsed and demuxed once (`codec.open`); `plan.py`
says which frames and residuals the clip needs (the sampling policy); a frame decoder
(`decoders.py`) decodes and resizes the frames while a worker thread parses the residuals,
which `residuals.py` then rebuilds and resizes. The device only picks the defaults
(`default_backends`): PyAV and the parser's residual planes on the CPU, NVDEC and the residual
kernels on a CUDA host; either can be named instead (`decoder=`, `residual_backend=`), and the
tensors are the same whichever does the work.

Resizing (`resample`): bilinear, align_corners=False, no antialiasing (torch's interpolate,
computed as gathers), to size x size; `keep_aspect=True` resizes the short side to `size` (the
long side to round(long * size / short)) and centre-crops (offset (long' - size) // 2). Frames
are libswscale's rgb24 arithmetic resized in float32 and rounded back to uint8. Residuals are
resized in float32 from their Y/U/V planes, then converted with the frames' matrix and range
(see `colour`) and stored as float16.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from .decoders import get_decoder
from .demux import Source
from .errors import CorruptStream
from .plan import RESIDUAL_MODES, plan_clip
from .residuals import residual_builder
from .stream import open as open_stream

__all__ = ["ClipSample", "default_backends", "sample_clip"]


@dataclass
class ClipSample:
    """What the front end hands the model for one clip (see the module docstring)."""

    iframes: torch.Tensor              # uint8 [N, 3, size, size] RGB
    residuals: torch.Tensor            # float16 [N, 3, size, size] RGB residual, pixel units
    frame_indices: list[int]           # display indices of the appearance frames
    residual_indices: list[int]        # the first frame of residual_frames[i]; -1 for zeros
    residual_frames: list[tuple[int, ...]]  # every frame whose residual makes residuals[i]
    policy: str                        # "keyframes" or "decoded"
    fps: float | None
    duration: float | None

    @classmethod
    def from_plan(cls, policy: str, frame_indices: list[int], sources: list[tuple[int, ...]], iframes: torch.Tensor,
                  residuals: torch.Tensor, fps: float | None, duration: float | None) -> ClipSample:
        """The sample of a clip planned by `plan_clip` (policy, frames, residual sources)."""
        return cls(iframes=iframes, residuals=residuals, frame_indices=list(frame_indices),
                   residual_indices=[src[0] if src else -1 for src in sources], residual_frames=list(sources),
                   policy=policy, fps=fps, duration=duration)

    def info(self) -> dict[str, Any]:
        """What was sampled, as JSON-ready values (a feature store keeps it per video)."""
        return {"frames": list(self.frame_indices), "residual_frames": list(self.residual_indices),
                "policy": self.policy, "fps": self.fps, "duration": self.duration}


def default_backends(device: torch.device) -> tuple[str, str]:
    """(decoder, residual backend) used for `device` when `sample_clip` is not told."""
    if device.type == "cuda" and torch.cuda.is_available():
        return "nvdec", "kernels"
    return "pyav", "parser"


def sample_clip(path: Source, num_segments: int = 20, size: int = 224, residual: str = "middle",
                device: str | torch.device = "cpu", keep_aspect: bool = False, decoder: str | None = None,
                residual_backend: str | None = None) -> ClipSample:
    """Samples N = num_segments appearance frames and residual frames of an H.264 clip.

    See `plan` for the policy and the module docstring for the rest. decoder: a name in
    `decoders.DECODERS`; residual_backend: one of `residuals.RESIDUAL_BACKENDS`; None: the
    device's defaults (`default_backends`). Raises codec.UnsupportedStream / CorruptStream
    (naming the file) for video the parser or the decoder cannot read; ValueError for bad
    arguments.
    """
    if residual not in RESIDUAL_MODES:
        raise ValueError(f"residual must be one of {RESIDUAL_MODES}, got {residual!r}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    default_decoder, default_residuals = default_backends(device)
    frames_from = get_decoder(decoder or default_decoder)
    residuals_from = residual_builder(residual_backend or default_residuals)
    with open_stream(path) as s:
        policy, frame_indices, sources = plan_clip(s, num_segments, residual)
        # threads: the decoder's, and one that parses the residuals (the parser releases the GIL)
        with ThreadPoolExecutor(frames_from.threads + 1) as pool:
            parsed = pool.submit(residuals_from.prepare, s, sources, size, keep_aspect, device)
            small = frames_from.frames(path, s, frame_indices, size, keep_aspect, device, pool)
            prepared = parsed.result()  # (on an error the pool's exit waits for it all the same)
        missing = sorted(set(frame_indices) - set(small))
        if missing:
            raise CorruptStream(f"frames {missing} (display order) did not come out of the decoder", s.name)
        residuals = residuals_from.finish(prepared, s, sources, size, keep_aspect, device)
        iframes = torch.stack([small[i] for i in frame_indices]).contiguous().to(device)
        return ClipSample.from_plan(policy, frame_indices, sources, iframes, residuals, s.fps, s.duration)
