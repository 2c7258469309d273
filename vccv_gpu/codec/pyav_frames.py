"""Frames decoded by PyAV (libavcodec) on the CPU: the front end's "pyav" decoder.

Only what the plan needs is decoded. MP4/MOV files were demuxed once by `codec.open`, which
records where each packet lies (`Stream.packet_spans`): their packets are read from there into
a bare decoder. Other containers with timestamps are opened again and seek to each GOP; raw
Annex B (no timestamps) and containers whose seek lands after the keyframe (MPEG-TS) are decoded
in order from the start. Pictures with nal_ref_idc 0 that are not wanted are never handed to
the decoder, and nothing after the last wanted picture (decoding order) is. Independent GOPs are
split over up to `decoder_workers()` decoders in threads (PyAV releases the GIL while decoding).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .demux import Source
from .errors import CorruptStream
from .plan import gop_groups, split_runs
from .resample import frame_from_rgb
from .stream import Stream

__all__ = ["PyAVDecoder", "decoder_workers", "small_frame"]


def decoder_workers() -> int:
    """Decoder threads for independent GOPs (PyAV releases the GIL while decoding)."""
    return max(1, min(4, os.cpu_count() or 1))


class PyAVDecoder:
    """Decodes a clip's wanted frames with PyAV; `threads` decoders at most (default:
    `decoder_workers()`, read at each call)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    @property
    def threads(self) -> int:
        return self.workers if self.workers is not None else decoder_workers()

    def frames(self, source: Source, stream: Stream, indices: list[int], size: int, keep_aspect: bool,
               device: torch.device, pool: Executor) -> dict[int, torch.Tensor]:
        """The front end's decoder interface: {display index: uint8 RGB [3, size, size]} on
        `device` (PyAV's rgb24 resized on the CPU by `small_frame`; one pinned upload to CUDA)."""

        def to_tensor(frame: Any) -> torch.Tensor:
            return small_frame(frame, stream, size, keep_aspect)

        small = self.decode(source, stream, indices, to_tensor, pool)
        if device.type != "cuda" or not small:
            return small
        order = sorted(small)
        batch = torch.stack([small[i] for i in order]).pin_memory().to(device, non_blocking=True)
        return dict(zip(order, batch.unbind(0)))

    def decode(self, source: Source, stream: Stream, indices: list[int], convert: Callable[[Any], Any] | None = None,
               pool: Executor | None = None) -> dict[int, Any]:
        """{display index: convert(frame)} for the frames `indices`, where `frame` is PyAV's
        av.VideoFrame and `convert` runs in the decoding thread (default: RGB uint8 [H, W, 3],
        PyAV's rgb24).

        Containers with timestamps: each GOP with needed frames is decoded from its keyframe up to
        its last needed frame (a lone keyframe: its packet only), skipping the pictures nothing
        refers to (nal_ref_idc 0) unless they are wanted. MP4/MOV: the packets are read at the
        offsets `codec.open`'s demuxing recorded (`Stream.packet_spans`) into a bare decoder, so the
        container is demuxed once; other containers: one seek per GOP. With `threads` > 1 the GOPs
        are split into up to `threads` contiguous runs, each decoded by its own decoder in `pool`
        (or a pool of its own). Raw Annex B (no timestamps), and containers whose seek
        lands after the keyframe (MPEG-TS): decodes in order from the start and stops after the
        last needed frame. Raises CorruptStream naming the file when PyAV fails or a frame does
        not come out.
        """
        import av

        wanted = sorted(set(indices))
        if not wanted:
            return {}
        convert = convert or _rgb24
        workers = self.threads
        pts = [f.pts for f in stream.frames]
        timed = stream.container != "h264" and None not in pts and len(set(pts)) == len(pts)
        out: dict[int, Any] = {}
        # The parser's demuxing pass recorded where each packet lies (MP4/MOV): read them from there.
        decode_run = self._decode_spans if stream.packet_spans is not None and timed else self._decode_seeking
        try:
            if timed:
                groups = list(gop_groups(stream, wanted).items())
                runs = split_runs(groups, max(1, workers))
                try:
                    if len(runs) == 1:
                        # One run: let libavcodec decode it with frame threads too, unless it is
                        # lone keyframes only (no lookahead to overlap).
                        frame_threads = workers > 1 and any(len(t) > 1 or t[0] != k for k, t in runs[0])
                        out.update(decode_run(source, stream, runs[0], convert, frame_threads))
                    else:
                        own = pool is None
                        ex = ThreadPoolExecutor(len(runs)) if own else pool
                        futures: list[Future] = []
                        try:
                            futures += [ex.submit(decode_run, source, stream, run, convert) for run in runs]
                            for fut in futures:
                                out.update(fut.result())
                        finally:
                            if own:
                                ex.shutdown(wait=True)
                            else:
                                for fut in futures:
                                    fut.cancel()
                                wait(futures)  # none still reads the source when this returns
                except _SeekMissed:  # e.g. MPEG-TS, where seeking is approximate
                    out.clear()
                    timed = False
            if not timed:
                with av.open(_av_source(source)) as container:
                    self.decode_in_order(container, container.streams.video[0], wanted, out, convert)
        except av.FFmpegError as e:
            raise CorruptStream(f"PyAV could not decode the sampled frames ({e})", stream.name) from None
        missing = [i for i in wanted if i not in out]
        if missing:
            raise CorruptStream(f"frames {missing} (display order) did not come out of the decoder", stream.name)
        return out

    def _decode_seeking(self, source: Source, stream: Stream, groups: list[tuple[int, list[int]]],
                        convert: Callable[[Any], Any], frame_threads: bool = False) -> dict[int, Any]:
        """Decodes the GOPs `groups` ((keyframe's decoding index, wanted frames) pairs) with a
        container of its own (frame_threads: libavcodec's frame and slice threading; else its
        default)."""
        import av

        frames, pictures = stream.frames, stream.pictures
        index_of = {f.pts: f.index for f in frames}
        out: dict[int, Any] = {}
        with av.open(_av_source(source)) as container:
            vs = container.streams.video[0]
            ctx = vs.codec_context
            if frame_threads:
                ctx.thread_type = "AUTO"
            for key, targets in groups:
                key_pts = pictures[key].pts
                container.seek(key_pts, stream=vs, backward=True)  # also flushes the decoder
                todo = {frames[i].pts for i in targets}
                unfed = set(todo)  # wanted pictures not yet handed to the decoder
                lone_key = targets == [pictures[key].index] and pictures[key].key
                seen_key = False
                for packet in container.demux(vs):
                    if packet.pts is not None and not seen_key:
                        # In decoding order nothing before a keyframe is displayed after it: a later
                        # timestamp before the keyframe's own packet means the seek overshot.
                        if packet.pts > key_pts:
                            raise _SeekMissed
                        seen_key = packet.pts == key_pts
                    index = index_of.get(packet.pts) if packet.pts is not None else None
                    if lone_key:
                        if packet.pts != key_pts:
                            continue  # the seek landed earlier (e.g. a recovery point not in the index)
                        decoded = self.send(ctx, packet, index) + list(ctx.decode(None))  # drain: no lookahead
                        ctx.flush_buffers()
                    elif packet.size == 0:  # end of the stream: drain
                        decoded = list(ctx.decode(None))
                        ctx.flush_buffers()
                    else:
                        if seen_key and index is not None and packet.pts not in unfed and not frames[index].reference:
                            continue  # nothing predicts from it and it is not wanted
                        unfed.discard(packet.pts)
                        decoded = self.send(ctx, packet, index)
                        if not unfed:  # everything needed is in the decoder: drain it
                            decoded += list(ctx.decode(None))
                            ctx.flush_buffers()
                    for frame in decoded:
                        if frame.pts in todo:
                            out[index_of[frame.pts]] = convert(frame)
                            todo.discard(frame.pts)
                    if not todo or lone_key or not unfed:
                        break
        return out


    def _decode_spans(self, source: Source, stream: Stream, groups: list[tuple[int, list[int]]],
                      convert: Callable[[Any], Any], frame_threads: bool = False) -> dict[int, Any]:
        """`_decode_seeking` without a container: the GOPs' packets are read at their recorded
        offsets (`Stream.packet_spans`) and handed to a bare libavcodec decoder of its own."""
        import av

        frames, pictures, spans = stream.frames, stream.pictures, stream.packet_spans
        assert spans is not None
        index_of = {f.pts: f.index for f in frames}
        ctx = av.CodecContext.create("h264", "r")
        if stream.extradata:
            ctx.extradata = stream.extradata
        if frame_threads:
            ctx.thread_type = "AUTO"
        out: dict[int, Any] = {}
        with _span_reader(source) as read:
            for key, targets in groups:
                todo = set(targets)
                last = max(frames[i].decode_index for i in targets)
                for d in range(key, last + 1):
                    f = pictures[d]  # listed or not: an unlisted reference is decoded, not shown
                    if d != key and f.index not in todo and not f.reference:
                        continue  # nothing predicts from it and it is not wanted
                    packet = av.Packet(read(*spans[d]))
                    packet.pts = f.pts
                    decoded = self.send(ctx, packet, f.index)
                    if d == last:  # everything needed is in the decoder: drain it
                        decoded += list(ctx.decode(None))
                        ctx.flush_buffers()
                    for frame in decoded:
                        index = index_of.get(frame.pts)
                        if index in todo:
                            out[index] = convert(frame)
                            todo.discard(index)
        return out


    def decode_in_order(self, container: Any, vs: Any, wanted: list[int], out: dict[int, Any],
                        convert: Callable[[Any], Any]) -> None:
        """Raw Annex B and containers whose seeking is approximate: decodes from the start, in
        order, until the last wanted frame has come out."""
        todo = set(wanted)
        for n, frame in enumerate(container.decode(vs)):  # output order = display order
            if n in todo:
                out[n] = convert(frame)
                todo.discard(n)
                if not todo:
                    return


    def send(self, ctx: Any, packet: Any, index: int | None) -> list[Any]:
        """Hands one picture's packet (display index `index`, None when unknown) to the decoder
        `ctx`; the frames that come out. Every picture the decoder is given goes through here."""
        return list(ctx.decode(packet))


def _rgb24(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


class _SeekMissed(Exception):
    """The container's seek landed after the keyframe asked for."""


def _av_source(source: Source) -> Any:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return os.fspath(source)


@contextmanager
def _span_reader(source: Source) -> Iterator[Callable[[int, int], bytes]]:
    """read(offset, size) -> the source's bytes there (a file descriptor of its own, or a view
    of the given bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        yield lambda pos, size: bytes(view[pos:pos + size])
        return
    fd = os.open(os.fspath(source), os.O_RDONLY)
    try:
        def read(pos: int, size: int) -> bytes:
            data = os.pread(fd, size, pos)
            if len(data) != size:
                raise CorruptStream(f"the file ends inside a packet (offset {pos})", os.fspath(source))
            return data
        yield read
    finally:
        os.close(fd)


def small_frame(frame: Any, stream: Stream, size: int, keep_aspect: bool) -> torch.Tensor:
    """A decoded av.VideoFrame -> uint8 RGB [3, size, size]: PyAV's rgb24 (libswscale), resized
    and rounded (`resample.frame_from_rgb`)."""
    if (frame.height, frame.width) != (stream.height, stream.width):
        raise CorruptStream(f"PyAV decoded {frame.width}x{frame.height} frames, "
                            f"the SPS says {stream.width}x{stream.height}", stream.name)
    return frame_from_rgb(torch.from_numpy(frame.to_ndarray(format="rgb24")), size, keep_aspect)
