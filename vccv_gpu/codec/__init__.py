"""H.264 parsing in the compressed domain.

    from vccv_gpu import codec
    with codec.open("clip.mp4") as s:
        print(s.width, s.height, s.profile, s.entropy, len(s.frames))

`python -m vccv_gpu.codec info VIDEO...` prints the stream structure of files;
`codec.extract_motion(path)` and `python -m vccv_gpu.codec motion` read whole videos' motion.
"""

from typing import Any

from .errors import CorruptStream, StreamError, TruncatedStreamWarning, UnsupportedStream
from .motion import MotionFrame, extract_motion
from .stream import Coefficients, FrameInfo, Macroblocks, Residual, Stream, open

__all__ = ["ClipLoader", "ClipSample", "Coefficients", "CorruptStream", "FrameInfo", "Macroblocks", "MotionFrame",
           "Residual", "Stream", "StreamError", "TruncatedStreamWarning", "UnsupportedStream", "extract_motion",
           "open", "sample_clip"]


def __getattr__(name: str) -> Any:
    """`sample_clip`, `ClipSample` and `ClipLoader` load torch: imported on first use, so the
    parser and its command-line tools start without it."""
    if name in ("sample_clip", "ClipSample"):
        from . import sample

        return getattr(sample, name)
    if name == "ClipLoader":
        from . import loader

        return loader.ClipLoader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
