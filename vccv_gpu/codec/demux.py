"""Feeds a file or bytes to the native parser: raw Annex B directly, containers through PyAV."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .. import _h264
from .containers import truncation
from .errors import CorruptStream, UnsupportedStream

if TYPE_CHECKING:
    import av

Source = str | os.PathLike | bytes | bytearray | memoryview


@dataclass
class DemuxInfo:
    container: str               # "h264" for raw Annex B, else the PyAV format name
    time_base: Fraction | None   # unit of FrameInfo.pts; None for raw streams (no timestamps)
    fps: float | None            # from the container; None where it has none
    truncation: str | None       # why the data is known to be cut short, if it is
    extradata: bytes | None = None  # the decoder configuration (avcC) of a container, if any
    # (pts, byte offset, size) of each packet in demuxing order, where a packet's data lies as
    # is at its offset in the source (MP4/MOV); None elsewhere. The decoder then reads the
    # packets it needs from there instead of demuxing the container a second time.
    spans: list[tuple[int | None, int, int]] | None = None


# Appended to the error for a video in another codec that FFmpeg decodes (VP9, HEVC, AV1, MPEG-4 ...).
REENCODE_HINT = "re-encode it to H.264 with: python -m vccv_gpu.codec reencode IN OUT"

# Containers whose packets are stored contiguously at `packet.pos` (checked per file as well).
_SPAN_CONTAINERS = ("mov,mp4",)


def is_annexb(head: bytes) -> bool:
    """True when the data starts like an Annex B byte stream: zero bytes, then 00 00 01 and a
    NAL unit header (forbidden_zero_bit 0, a nal_unit_type). MPEG program streams and MPEG-1/2
    video also start with 00 00 01, then a code of 0xB0 or more, which no NAL header is."""
    stripped = head.lstrip(b"\0")
    if len(head) - len(stripped) < 2 or stripped[:1] != b"\x01" or len(stripped) < 2:
        return False
    header = stripped[1]
    return header & 0x80 == 0 and header & 0x1F != 0


def feed(native: _h264.Stream, source: Source, name: str) -> DemuxInfo:
    """Pushes all of `source` into `native` (not yet finished) and describes the container."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise CorruptStream("the data is empty", name)
        if is_annexb(data[:64]):
            native.add_packet(data, None, True)
            return DemuxInfo("h264", None, None, None)
        return _feed_container(native, io.BytesIO(data), len(data), name)
    path = Path(source)
    if path.stat().st_size == 0:
        raise CorruptStream("the file is empty", name)
    with path.open("rb") as f:
        head = f.read(64)
    if is_annexb(head):
        native.add_packet(path.read_bytes(), None, True)
        return DemuxInfo("h264", None, None, None)
    with path.open("rb") as f:
        return _feed_container(native, f, path.stat().st_size, name, path)


def _feed_container(native: _h264.Stream, file: BinaryIO, size: int, name: str, path: Path | None = None) -> DemuxInfo:
    """Demuxes with PyAV into `native`. MP4/MOV files (`path`): the packets' offsets go along,
    so that the parser reads slice data back from the file instead of keeping it (memory for
    headers only, whatever the video's length), and the decoder reads packets there too."""
    import av  # only containers need PyAV: raw Annex B streams parse without it

    cut = truncation(file, size)
    file.seek(0)
    try:
        container = _open_container(file)
    except av.error.FFmpegError as e:
        reason = cut or f"not a video container or H.264 stream that can be read ({e.strerror})"
        raise CorruptStream(reason, name) from None
    with container:
        videos = container.streams.video
        if not videos:
            raise UnsupportedStream(f"no video stream in the {container.format.name} container", name)
        stream = videos[0]
        if stream.codec_context is None:  # a codec FFmpeg does not know (or a damaged sample entry)
            if cut:
                raise CorruptStream(cut, name)
            raise UnsupportedStream("video codec is not one FFmpeg knows, not H.264", name)
        codec_name = stream.codec_context.name
        if codec_name != "h264":  # FFmpeg decodes it, so the re-encoder can convert it
            raise UnsupportedStream(f"video codec is {codec_name}, not H.264; {REENCODE_HINT}", name)
        extradata = stream.codec_context.extradata
        if extradata:
            native.add_extradata(extradata)
        rate = stream.average_rate or stream.guessed_rate
        info = DemuxInfo(container.format.name, stream.time_base, float(rate) if rate else None, cut,
                         bytes(extradata) if extradata else None)
        spans: list[tuple[int | None, int, int]] | None = (
            [] if container.format.name.startswith(_SPAN_CONTAINERS) else None)
        file_backed = spans is not None and path is not None
        if file_backed:
            native.set_source_file(os.fspath(path))
        checks: list[tuple[int, bytes]] = []  # the first and last packets' data, to check the offsets
        packets = _packets(container, stream, info)
        previous = next(packets, None)
        while previous is not None:
            packet = next(packets, None)
            last = packet is None
            spans = _add_span(spans, checks, previous, last=last)
            _add_packet(native, previous, last, _offset(previous) if file_backed else -1, name)
            previous = packet
    info.spans = spans if spans and _spans_hold(file, checks) else None
    return info


def _add_packet(native: _h264.Stream, packet: av.Packet, last: bool, offset: int, name: str) -> None:
    """One packet into the parser, with what the container says beside its data: encryption,
    new parameter sets (a second MP4 sample description) and whether an edit list leaves it out
    of the presentation (FFmpeg's discard flag: decoded for reference, not shown)."""
    if _side_data(packet, "encryption_info") is not None:
        raise UnsupportedStream("the video is encrypted (MPEG Common Encryption): decrypt it first", name)
    new_extradata = _side_data(packet, "new_extradata")
    if new_extradata:
        native.add_extradata(new_extradata)
    native.add_packet(packet, packet.pts, last, offset, not packet.is_discard)


def _side_data(packet: av.Packet, kind: str) -> bytes | None:
    if not hasattr(packet, "has_sidedata") or not packet.has_sidedata(kind):
        return None  # PyAV before 15 does not expose packet side data
    return bytes(packet.get_sidedata(kind))


def _offset(packet: av.Packet) -> int:
    return packet.pos if packet.pos is not None and packet.pos >= 0 else -1


def _add_span(spans: list | None, checks: list[tuple[int, bytes]], packet: av.Packet,
              last: bool = False) -> list | None:
    if spans is None or packet.pos is None or packet.pos < 0:
        return None
    if not spans or last:
        checks.append((packet.pos, bytes(packet)))
    spans.append((packet.pts, packet.pos, packet.size))
    return spans


def _spans_hold(file: BinaryIO, checks: list[tuple[int, bytes]]) -> bool:
    """Whether the source holds the checked packets' data at their offsets."""
    for pos, data in checks:
        file.seek(pos)
        if file.read(len(data)) != data:
            return False
    return True


# Codec options for every stream while FFmpeg probes the container: decode nothing. Probing
# otherwise decodes the first frames to learn the pixel format, which demuxing never asks for
# (9 of 10 ms of opening a 720p MP4, a few percent of parsing all of its 250 frames).
_PROBE_WITHOUT_DECODING = [{"skip_frame": "all"}] * 64


def _open_container(file: BinaryIO) -> av.container.InputContainer:
    """av.open for demuxing only: tolerates undecodable metadata text (damaged or odd files)."""
    import av

    def open_with(stream_options: list[dict[str, str]] | None) -> av.container.InputContainer:
        file.seek(0)
        try:
            return av.open(file, metadata_errors="replace", stream_options=stream_options)
        except TypeError:  # PyAV 19 dropped the option (and no longer decodes metadata eagerly)
            file.seek(0)
            return av.open(file, stream_options=stream_options)

    try:
        return open_with(_PROBE_WITHOUT_DECODING)
    except ValueError:  # PyAV takes no per-stream options for formats whose streams appear only
        return open_with(None)  # while probing (MPEG program streams): those are probed as before


def _packets(container: av.container.InputContainer, stream: av.VideoStream, info: DemuxInfo) -> Iterator[av.Packet]:
    """The stream's packets; a demuxer error ends the iteration and is recorded as truncation."""
    import av

    demuxer = container.demux(stream)
    while True:
        try:
            packet = next(demuxer)
        except StopIteration:
            return
        except av.error.FFmpegError as e:
            info.truncation = info.truncation or f"demuxing stopped early ({e.strerror})"
            return
        if packet.size:
            yield packet
