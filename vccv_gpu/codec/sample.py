"""The front end's sampling: N appearance frames and N residual frames of a clip (CPU path).

    from vccv_gpu import codec
    s = codec.sample_clip("clip.mp4", num_segments=20, size=224, residual="middle")
    s.iframes      # uint8   [N, 3, size, size] RGB
    s.residuals    # float16 [N, 3, size, size] RGB residual, pixel units
    s.frame_indices, s.residual_indices, s.residual_frames, s.policy, s.fps, s.duration

Policy: which frames and residuals a clip needs, see `plan`. Only the needed frames are decoded
(for the keyframe policy, a seek to each sampled keyframe, one packet decoded).

Resizing (`resample`): bilinear, align_corners=False, no antialiasing (torch's interpolate,
computed as gathers), to size x size; `keep_aspect=True` resizes the short side to `size` (the
long side to round(long * size / short)) and centre-crops (offset (long' - size) // 2). Frames
are PyAV's rgb24 (libswscale) resized in float32 and rounded back to uint8. Residuals are
resized in float32 from their Y/U/V planes, then converted with the frames' matrix and range
(see `colour`) and stored as float16. Everything is computed on the CPU and moved to `device` at the end, except for
device="cuda" on a CUDA host: then gpu.py computes the same tensors on the GPU.

Speed (results do not depend on it): MP4/MOV files are demuxed once, by `codec.open`, which
records where each packet lies; the decoders read the packets they need from there (other
containers are opened again and seek to each GOP; measured both ways on 10-s 720p and 1080p
clips, one pass was 2-11 % faster per clip). Independent GOPs are decoded by up to
min(4, CPUs) decoders in threads, while another thread parses the residuals; frames and
residuals are resized one at a time as they arrive, in the extension (resample.py); pictures
with nal_ref_idc 0 that are not sampled are never handed to the decoder, and nothing after the
last sampled picture (decoding order) is.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .colour import rgb_matrix
from .demux import Source
from .errors import CorruptStream
from .plan import RESIDUAL_MODES, gop_groups, plan_clip, split_runs
from .resample import frame_from_rgb, residual_from_planes
from .stream import Stream
from .stream import open as open_stream

__all__ = ["ClipSample", "decode_frames", "decoder_workers", "sample_clip", "small_frame", "summed_residual"]


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


# ----------------------------------------------------------------------------------------
# Decoding (PyAV)
# ----------------------------------------------------------------------------------------


def _av_source(source: Source) -> Any:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return os.fspath(source)


# Test hook: called with the display index (None when unknown) of every picture handed to the
# decoder by the seeking path, from whichever thread decodes it.
_decode_hook: Callable[[int | None], None] | None = None


def decoder_workers() -> int:
    """Decoder threads for independent GOPs (PyAV releases the GIL while decoding)."""
    return max(1, min(4, os.cpu_count() or 1))


def decode_frames(source: Source, stream: Stream, indices: list[int],
                  convert: Callable[[Any], Any] | None = None, workers: int = 1,
                  pool: Executor | None = None) -> dict[int, Any]:
    """{display index: convert(frame)} for the frames `indices`, where `frame` is PyAV's
    av.VideoFrame and `convert` runs in the decoding thread (default: RGB uint8 [H, W, 3],
    PyAV's rgb24).

    Containers with timestamps: each GOP with needed frames is decoded from its keyframe up to
    its last needed frame (a lone keyframe: its packet only), skipping the pictures nothing
    refers to (nal_ref_idc 0) unless they are wanted. MP4/MOV: the packets are read at the
    offsets `codec.open`'s demuxing recorded (`Stream.packet_spans`) into a bare decoder, so the
    container is demuxed once; other containers: one seek per GOP. With workers > 1 the GOPs
    are split into up to `workers` contiguous runs, each decoded by its own decoder in `pool`
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
    frames = stream.frames
    pts = [f.pts for f in frames]
    timed = stream.container != "h264" and None not in pts and len(set(pts)) == len(pts)
    out: dict[int, Any] = {}
    # The parser's demuxing pass recorded where each packet lies (MP4/MOV): read them from there.
    decode_run = _decode_spans if stream.packet_spans is not None and timed else _decode_seeking
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
                _decode_in_order(container, container.streams.video[0], wanted, out, convert)
    except av.FFmpegError as e:
        raise CorruptStream(f"PyAV could not decode the sampled frames ({e})", stream.name) from None
    missing = [i for i in wanted if i not in out]
    if missing:
        raise CorruptStream(f"frames {missing} (display order) did not come out of the decoder", stream.name)
    return out


def _rgb24(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


class _SeekMissed(Exception):
    """The container's seek landed after the keyframe asked for."""


def _decode_seeking(source: Source, stream: Stream, groups: list[tuple[int, list[int]]],
                    convert: Callable[[Any], Any], frame_threads: bool = False) -> dict[int, Any]:
    """Decodes the GOPs `groups` ((keyframe's decoding index, wanted frames) pairs) with a
    container of its own (frame_threads: libavcodec's frame and slice threading; else its
    default)."""
    import av

    frames, pictures = stream.frames, stream.pictures
    index_of = {f.pts: f.index for f in frames}
    hook = _decode_hook
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
                    if hook is not None:
                        hook(index)
                    decoded = list(ctx.decode(packet)) + list(ctx.decode(None))  # drain: no lookahead
                    ctx.flush_buffers()
                elif packet.size == 0:  # end of the stream: drain
                    decoded = list(ctx.decode(None))
                    ctx.flush_buffers()
                else:
                    if seen_key and index is not None and packet.pts not in unfed and not frames[index].reference:
                        continue  # nothing predicts from it and it is not wanted
                    if hook is not None:
                        hook(index)
                    unfed.discard(packet.pts)
                    decoded = list(ctx.decode(packet))
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


def _decode_spans(source: Source, stream: Stream, groups: list[tuple[int, list[int]]],
                  convert: Callable[[Any], Any], frame_threads: bool = False) -> dict[int, Any]:
    """`_decode_seeking` without a container: the GOPs' packets are read at their recorded
    offsets (`Stream.packet_spans`) and handed to a bare libavcodec decoder of its own."""
    import av

    frames, pictures, spans = stream.frames, stream.pictures, stream.packet_spans
    assert spans is not None
    index_of = {f.pts: f.index for f in frames}
    hook = _decode_hook
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
                if hook is not None:
                    hook(f.index)
                packet = av.Packet(read(*spans[d]))
                packet.pts = f.pts
                decoded = list(ctx.decode(packet))
                if d == last:  # everything needed is in the decoder: drain it
                    decoded += list(ctx.decode(None))
                    ctx.flush_buffers()
                for frame in decoded:
                    index = index_of.get(frame.pts)
                    if index in todo:
                        out[index] = convert(frame)
                        todo.discard(index)
    return out


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


def _decode_in_order(container: Any, vs: Any, wanted: list[int], out: dict[int, Any],
                     convert: Callable[[Any], Any]) -> None:
    todo = set(wanted)
    for n, frame in enumerate(container.decode(vs)):  # output order = display order
        if n in todo:
            out[n] = convert(frame)
            todo.discard(n)
            if not todo:
                return


# ----------------------------------------------------------------------------------------
# The front end
# ----------------------------------------------------------------------------------------


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


def small_frame(frame: Any, stream: Stream, size: int, keep_aspect: bool) -> torch.Tensor:
    """A decoded av.VideoFrame -> uint8 RGB [3, size, size]: PyAV's rgb24 (libswscale), resized
    and rounded (`resample.frame_from_rgb`)."""
    if (frame.height, frame.width) != (stream.height, stream.width):
        raise CorruptStream(f"PyAV decoded {frame.width}x{frame.height} frames, "
                            f"the SPS says {stream.width}x{stream.height}", stream.name)
    return frame_from_rgb(torch.from_numpy(frame.to_ndarray(format="rgb24")), size, keep_aspect)


def sample_clip(path: Source, num_segments: int = 20, size: int = 224, residual: str = "middle",
                device: str | torch.device = "cpu", keep_aspect: bool = False) -> ClipSample:
    """Samples N = num_segments appearance frames and residual frames of an H.264 clip.

    See the module docstring for the policy; device="cuda" on a CUDA host runs the GPU front end
    (`gpu.sample_clip_device`: same indices, tensors made on the GPU). Raises
    codec.UnsupportedStream / CorruptStream (naming the file) for video the parser or PyAV cannot
    read; ValueError for bad arguments.
    """
    if residual not in RESIDUAL_MODES:
        raise ValueError(f"residual must be one of {RESIDUAL_MODES}, got {residual!r}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        # NVDEC frames and device residuals (gpu.py; frames from PyAV when PyNvVideoCodec is missing)
        from .gpu import sample_clip_device

        return sample_clip_device(path, num_segments, size, residual, device, keep_aspect)
    with open_stream(path) as s:
        policy, frame_indices, sources = plan_clip(s, num_segments, residual)

        matrix = rgb_matrix(s.sequence.get("matrix_coefficients"), bool(s.sequence.get("full_range")))
        fps, duration = s.fps, s.duration

        def frame_to_tensor(frame: Any) -> torch.Tensor:
            return small_frame(frame, s, size, keep_aspect)

        def residuals_small() -> dict[tuple[int, ...], torch.Tensor]:
            # One task for all residuals: splitting them over the pool measured slower.
            return {src: (residual_from_planes(*summed_residual(s, src), matrix, s.height, s.width, size, keep_aspect)
                          if src else torch.zeros(3, size, size)).to(torch.float16)
                    for src in dict.fromkeys(sources)}

        workers = decoder_workers()
        with ThreadPoolExecutor(workers + 1) as pool:
            res_future = pool.submit(residuals_small)  # the parser releases the GIL too
            small = decode_frames(path, s, frame_indices, frame_to_tensor, workers, pool)
            res = res_future.result()  # (on an error the pool's exit waits for it all the same)

    iframes = torch.stack([small[i] for i in frame_indices])
    residuals = torch.stack([res[src] for src in sources])
    return ClipSample.from_plan(policy, frame_indices, sources, iframes.contiguous().to(device),
                                residuals.contiguous().to(device), fps, duration)
