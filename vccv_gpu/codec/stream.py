"""`codec.open`: the stream structure of an H.264 video (parameter sets, slices, display order)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .. import _h264
from .demux import DemuxInfo, Source, feed
from .errors import CorruptStream, TruncatedStreamWarning, UnsupportedStream


@dataclass(frozen=True)
class FrameInfo:
    """One picture. `index` is its display position among the listed frames (None for a
    picture that is not listed: before the stream's first random access point, or left out by
    an edit list; decoded only as a reference); `decode_index` its bitstream position."""

    index: int | None
    pts: int | None        # container timestamp in Stream.time_base units; None for raw streams
    type: str              # "I", "P" or "B": the most general slice type in the picture
    key: bool              # random access point: IDR, or I picture at a recovery point
    decode_index: int
    num_slices: int
    reference: bool        # nal_ref_idc != 0: other pictures may predict from it


@dataclass(frozen=True)
class Macroblocks:
    """Per-macroblock and per-4x4-block information of one frame.

    mb_type: int8 [H16, W16]: 0 intra, 1 inter, 2 skip (P_Skip), 3 direct (B_Direct_16x16,
        B_Skip), 4 I_PCM. qp: int8 [H16, W16] luma QP. cbp: int8 [H16, W16] coded_block_pattern
        (bits 0-3: the coded luma 8x8 blocks, bits 4-5: chroma 0/1 DC/2 DC+AC; I_PCM 0x2f).
        mv: int16 [2, H4, W4, 2] list 0/1 vectors
        (x, y) in quarter pels, 0 where unused; ref_idx: int8 [2, H4, W4], -1 where unused.
        Direct-mode blocks (B_Skip, B_Direct_16x16, B_8x8 direct sub-blocks) hold their derived
        spatial or temporal direct vectors and reference indices (8.4.1.2).
    intra_pred: int8 [H4, W4] luma intra prediction mode of the block covering each 4x4 block:
        Intra4x4PredMode / Intra8x8PredMode 0..8 (8.3.1.1, 8.3.2.1: derived from the neighbours'
        modes, not the coded rem_intra_pred_mode), Intra16x16PredMode 0..3 (Table 7-11); -1 in
        inter and I_PCM macroblocks. intra_size: int8 [H16, W16] that block's size, 4, 8 or 16,
        0 when not intra or I_PCM. intra_chroma_pred: int8 [H16, W16] intra_chroma_pred_mode
        (0 DC, 1 horizontal, 2 vertical, 3 plane), -1 when not intra or I_PCM.

    The arrays are read-only views of the parser's (cached) result: copy one to modify it.
    """

    mb_type: np.ndarray
    qp: np.ndarray
    cbp: np.ndarray
    mv: np.ndarray
    ref_idx: np.ndarray
    intra_pred: np.ndarray
    intra_size: np.ndarray
    intra_chroma_pred: np.ndarray


@dataclass(frozen=True)
class Residual:
    """What the decoder adds to the prediction, int16 planes of the coded size (4:2:0)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


@dataclass(frozen=True)
class Coefficients:
    """Dequantised coefficients of the frame's nonzero transform blocks, for reconstruction on
    another device: `data` is one contiguous int16 buffer (one host-to-device copy) and the
    other fields are views of it; read-only, like Macroblocks' arrays. positions4/8: [n, 3]
    (plane 0 Y / 1 Cb / 2 Cr, x, y of the block's top-left sample in its plane); coeffs4
    [n4, 4, 4] and coeffs8 [n8, 8, 8] in raster order, ready for the inverse transform
    (8.5.12.2 / 8.5.13.2: r = (H d H^T + 32) >> 6). In `data` they lie coeffs4 | coeffs8 |
    positions4 | positions8."""

    data: np.ndarray
    positions4: np.ndarray
    positions8: np.ndarray
    coeffs4: np.ndarray
    coeffs8: np.ndarray

    @staticmethod
    def from_buffer(data: np.ndarray, n4: int, n8: int) -> Coefficients:
        c8_start = 16 * n4
        p4_start = c8_start + 64 * n8
        p8_start = p4_start + 3 * n4
        return Coefficients(data, data[p4_start:p8_start].reshape(n4, 3), data[p8_start:].reshape(n8, 3),
                            data[:c8_start].reshape(n4, 4, 4), data[c8_start:p4_start].reshape(n8, 8, 8))


def _packet_spans(demux: DemuxInfo, pictures: list[FrameInfo]) -> dict[int, tuple[int, int]] | None:
    """{decode index: (byte offset, size) of its packet in the source}: where the container
    stores packets contiguously and each packet is one picture (their timestamps agree); else
    None."""
    spans = demux.spans
    if not spans or not pictures:
        return None
    by_decode: dict[int, tuple[int, int]] = {}
    for f in pictures:
        pts, pos, size = spans[f.decode_index] if f.decode_index < len(spans) else (None, 0, 0)
        if pts is None or pts != f.pts:
            return None
        by_decode[f.decode_index] = (pos, size)
    return by_decode


@contextmanager
def _native_errors(name: str, where: str = "") -> Iterator[None]:
    """Re-raises the extension's exceptions as codec errors naming the file (and frame)."""
    try:
        yield
    except _h264.UnsupportedStream as e:
        raise UnsupportedStream(where + str(e), name) from None
    except _h264.CorruptStream as e:
        raise CorruptStream(where + str(e), name) from None


class Stream:
    """A parsed H.264 stream; create it with `codec.open`. `frames` and the other frame lists
    are in display order; `pictures` is every picture in decoding order."""

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
        # Every picture in decoding order, the listed ones among them (`frames`) as well as the
        # ones decoded only as references (index None); the front end decodes from these.
        self.pictures: list[FrameInfo] = [
            FrameInfo(None if index < 0 else index, pts, kind, key, decode_index, num_slices, reference)
            for index, decode_index, pts, kind, key, num_slices, reference in native.pictures()
        ]
        self.frames: list[FrameInfo] = sorted((f for f in self.pictures if f.index is not None),
                                              key=lambda f: f.index)  # type: ignore[arg-type, return-value]
        self.packet_spans: dict[int, tuple[int, int]] | None = _packet_spans(demux, self.pictures)
        self.truncated: bool = native.truncated or demux.truncation is not None
        if self.truncated:
            reason = demux.truncation or "the last picture is cut short"
            warnings.warn(f"{name}: truncated ({reason}); {len(self.frames)} complete frames listed",
                          TruncatedStreamWarning, stacklevel=3)

    @property
    def extradata(self) -> bytes | None:
        """The container's decoder configuration (avcC), if it has one."""
        return self._demux.extradata

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

    def macroblocks(self, index: int) -> Macroblocks:
        """Macroblock types, QPs, motion vectors and reference indices of frame `index`."""
        return Macroblocks(**self._parsed(index, coefficients=False).macroblocks())

    def residual(self, index: int) -> Residual:
        """The residual planes of frame `index` (display order), exact integer reconstruction."""
        return Residual(*self._parsed(index).residual())

    def coefficients(self, index: int) -> Coefficients:
        """The compact form of the residual: dequantised nonzero blocks in one int16 buffer."""
        return Coefficients.from_buffer(*self._parsed(index).coefficients())

    def _parsed(self, index: int, coefficients: bool = True) -> Any:
        """Parses only that picture's slices. The extension keeps a few recent pictures, so
        macroblocks, residual and coefficients of one frame share one parse, except that a parse
        for macroblocks alone (coefficients=False) skips scaling and storing the residual: ask for
        the residual or coefficients first when the macroblocks are wanted too."""
        if self._native is None:
            raise ValueError(f"{self.name}: the stream is closed")
        decode_index = self.frames[index].decode_index
        where = f"picture {decode_index} (decoding order), frame {index}: "
        with _native_errors(self.name, where):
            return self._native.parse_picture(decode_index, coefficients)

    def scaling_matrices(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Weights in force for frame `index`: 4x4 [6,4,4] (Intra Y,Cb,Cr, Inter Y,Cb,Cr) and
        8x8 [6,8,8] (Intra Y, Inter Y, Intra Cb, Inter Cb, Intra Cr, Inter Cr), raster order."""
        return self._native.scaling_matrices(self.frames[index].decode_index)

    def close(self) -> None:
        self._native = None  # drops the slice data and parsed pictures; header fields stay readable

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<codec.Stream {self.name!r} {self.width}x{self.height} {self.profile} {self.entropy}, "
                f"{len(self.frames)} frames>")


def open(source: Source) -> Stream:  # noqa: A001 - the module's public verb, like io.open
    """Parses an H.264 video: a file (mp4, mov, mkv, ts, MPEG program stream .mpg, raw .h264/.264) or bytes.

    Raises `UnsupportedStream` for valid video it does not handle and `CorruptStream` for
    broken data; a truncated file opens with its complete frames and `truncated` set.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    native = _h264.Stream()
    with _native_errors(name):
        demux = feed(native, source, name)
        native.finish()
    return Stream(native, demux, name)
