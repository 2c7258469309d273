"""`codec.open`: the stream structure of an H.264 video (parameter sets, slices, display order)."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator

import numpy as np

from .. import _h264
from .demux import DemuxInfo, Source, feed
from .errors import CorruptStream, UnsupportedStream


@dataclass(frozen=True)
class FrameInfo:
    """One picture. `index` is its display position; `decode_index` its bitstream position."""

    index: int
    pts: int | None        # container timestamp in Stream.time_base units; None for raw streams
    type: str              # "I", "P" or "B": the most general slice type in the picture
    key: bool              # random access point: IDR, or I picture at a recovery point
    decode_index: int
    num_slices: int
    reference: bool        # nal_ref_idc != 0: other pictures may predict from it


@contextmanager
def _native_errors(name: str) -> Iterator[None]:
    """Re-raises the extension's exceptions as codec errors naming the file."""
    try:
        yield
    except _h264.UnsupportedStream as e:
        raise UnsupportedStream(str(e), name) from None
    except _h264.CorruptStream as e:
        raise CorruptStream(str(e), name) from None


class Stream:
    """A parsed H.264 stream; create it with `codec.open`. All frame lists are in display order."""

    def __init__(self, native: _h264.Stream, demux: DemuxInfo, name: str) -> None:
        self._native = native
        self._demux = demux
        self.name = name
        info = native.sequence_info()
        self.width: int = info["width"]
        self.height: int = info["height"]
        self.coded_width: int = info["coded_width"]
        self.coded_height: int = info["coded_height"]
        self.profile: str = info["profile"]
        self.level: str = info["level"]
        self.entropy: str = info["entropy"]
        self.sequence: dict[str, Any] = info
        self.frames: list[FrameInfo] = [
            FrameInfo(index, pts, kind, key, decode_index, num_slices, reference)
            for index, (decode_index, pts, kind, key, num_slices, reference, _poc) in enumerate(native.frames())
        ]
        self._display_of_decode = {f.decode_index: f.index for f in self.frames}
        self.truncated: bool = native.truncated or demux.truncation is not None
        if self.truncated:
            reason = demux.truncation or "the last NAL unit is cut"
            warnings.warn(f"{name}: truncated ({reason}); {len(self.frames)} complete frames listed",
                          stacklevel=3)

    @property
    def container(self) -> str:
        """PyAV's format name, or "h264" for a raw Annex B stream."""
        return self._demux.container

    @property
    def time_base(self) -> Fraction | None:
        return self._demux.time_base

    @property
    def fps(self) -> float | None:
        """Frame rate from the container, else from the SPS's VUI timing, else None."""
        return self._demux.fps or self.sequence["fps"]

    @property
    def duration(self) -> float | None:
        """Seconds from the first frame's start to the last frame's end, if the timing is known."""
        pts = [f.pts for f in self.frames if f.pts is not None]
        fps = self.fps
        if self.time_base is not None and len(pts) == len(self.frames) and pts:
            last = 1 / fps if fps else 0.0
            return float((max(pts) - min(pts)) * self.time_base) + last
        return len(self.frames) / fps if fps else None

    @property
    def keyframes(self) -> list[int]:
        """Display indices of the random access points."""
        return [f.index for f in self.frames if f.key]

    def slice_headers(self, index: int) -> list[dict[str, Any]]:
        """The parsed slice headers of frame `index` (display order), one dict per slice."""
        return self._native.slice_headers(self.frames[index].decode_index)

    def scaling_matrices(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Weights in force for frame `index`: 4x4 [6,4,4] (Intra Y,Cb,Cr, Inter Y,Cb,Cr) and
        8x8 [6,8,8] (Intra Y, Inter Y, Intra Cb, Inter Cb, Intra Cr, Inter Cr), raster order."""
        return self._native.scaling_matrices(self.frames[index].decode_index)

    def close(self) -> None:
        self._native = None  # drops the slice data; the header fields stay readable

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<codec.Stream {self.name!r} {self.width}x{self.height} {self.profile} {self.entropy}, "
                f"{len(self.frames)} frames>")


def open(source: Source) -> Stream:  # noqa: A001 - the module's public verb, like io.open
    """Parses an H.264 video: a file (mp4, mov, mkv, ts, raw .h264/.264) or bytes.

    Raises `UnsupportedStream` for valid video it does not handle and `CorruptStream` for
    broken data; a truncated file opens with its complete frames and `truncated` set.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    native = _h264.Stream()
    with _native_errors(name):
        demux = feed(native, source, name)
        native.finish()
    return Stream(native, demux, name)
