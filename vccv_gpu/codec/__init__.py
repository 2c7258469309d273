"""H.264 parsing in the compressed domain.

    from vccv_gpu import codec
    with codec.open("clip.mp4") as s:
        print(s.width, s.height, s.profile, s.entropy, len(s.frames))

`python -m vccv_gpu.codec info VIDEO...` prints the stream structure of files.
"""

from .errors import CorruptStream, StreamError, UnsupportedStream
from .stream import Coefficients, FrameInfo, Macroblocks, Residual, Stream, open

__all__ = ["Coefficients", "CorruptStream", "FrameInfo", "Macroblocks", "Residual", "Stream", "StreamError",
           "UnsupportedStream", "open"]
