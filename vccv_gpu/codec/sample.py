"""The front end's sampling: N appearance frames and N residual frames of a clip (CPU path).

    from vccv_gpu import codec
    s = codec.sample_clip("clip.mp4", num_segments=20, size=224, residual="middle")
    s.iframes      # uint8   [N, 3, size, size] RGB
    s.residuals    # float16 [N, 3, size, size] RGB residual, pixel units
    s.frame_indices, s.residual_indices, s.residual_frames, s.policy, s.fps, s.duration

Policy (DESIGN.md, "Sampling policy"); F frames, N segments, indices in display order:

* Uniform positions: the centres of N equal segments of the frame range, in frame-index units
  u_j = (j + 1/2) F / N - 1/2, j = 0..N-1 (segment j covers frames [jF/N, (j+1)F/N)).
* "keyframes" (at least N distinct keyframes): the N keyframes k_0 < ... < k_{N-1} that minimise
  sum_j |k_j - u_j| over all strictly increasing choices (so each position gets its nearest
  keyframe whenever those are distinct; when two positions would share one, the assignment
  with the least total displacement wins). Ties: the lexicographically smallest choice, i.e.
  earlier keyframes. Computed exactly in integers. The GOP of keyframe k is the frames from k
  up to the next keyframe (display order). Residual of the GOP, by `residual`:
    - "first":  the first P frame after the keyframe (display order);
    - "middle": the middle P frame, P_list[len(P_list) // 2] (the upper middle for an even count);
    - "sum":    the sum of the residuals of all P frames of the GOP. B frames are not summed:
                their residuals are corrections to bi-predictions, not frame-to-frame change.
  A GOP without P frames uses its B frames by the same rules; one without inter frames gives
  a zero residual (residual index -1).
  Only the sampled keyframes are decoded (a seek to each one's timestamp, one packet decoded).
* "decoded" (fewer than N distinct keyframes): frame round(u_j) = floor((2j+1)F / 2N) is
  decoded (from its preceding keyframe); the residual is that frame's own if it is a P or B
  frame, else that of the next P or B frame in display order (which may lie in the next GOP),
  else zeros (residual index -1). `residual` does not apply here. With F < N frames, indices repeat.

Resizing: bilinear, align_corners=False, no antialiasing (torch.nn.functional.interpolate), to
size x size; `keep_aspect=True` resizes the short side to `size` (the long side to
round(long * size / short)) and centre-crops (offset (long' - size) // 2). Frames are resized
in float32 from uint8 and rounded back to uint8; residuals are resized in float32 and stored
as float16. Frames are converted to RGB by PyAV (swscale); residuals with the same matrix and
range (see `colour`). Everything is computed on the CPU and moved to `device` at the end.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .colour import residual_to_rgb, rgb_matrix
from .demux import Source
from .errors import CorruptStream
from .stream import Stream
from .stream import open as open_stream

__all__ = [
    "RESIDUAL_MODES",
    "ClipSample",
    "choose_keyframes",
    "gop_residual_frames",
    "resize",
    "sample_clip",
    "uniform_indices",
]

RESIDUAL_MODES = ("first", "middle", "sum")


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


# ----------------------------------------------------------------------------------------
# Policy (pure functions of the frame structure)
# ----------------------------------------------------------------------------------------


def uniform_indices(num_frames: int, n: int) -> list[int]:
    """round(u_j) for the segment centres u_j = (j + 1/2) F / N - 1/2 (halves round up)."""
    return [((2 * j + 1) * num_frames) // (2 * n) for j in range(n)]


def choose_keyframes(keyframes: list[int], num_frames: int, n: int) -> list[int]:
    """N distinct keyframes, increasing, minimising sum_j |k_j - u_j|; ties to earlier ones.

    Exact: costs are |2N k - ((2j+1) F - N)| (2N times the distance). Needs len(keyframes) >= n.
    """
    ks = sorted(set(keyframes))
    kcount = len(ks)
    if kcount < n:
        raise ValueError(f"{n} distinct keyframes needed, {kcount} given")
    karr = np.asarray(ks, dtype=np.int64)
    cost = np.abs(2 * n * karr[None, :] - ((2 * np.arange(n, dtype=np.int64)[:, None] + 1) * num_frames - n))
    big = np.iinfo(np.int64).max // 4
    # suffix[j, r]: least cost of positions j..N-1 with position j on keyframe r, later ones after r.
    suffix = np.full((n, kcount), big, dtype=np.int64)
    suffix[n - 1] = cost[n - 1]
    for j in range(n - 2, -1, -1):
        nxt = suffix[j + 1]
        # best_after[r] = min(nxt[r+1:]) ; inf for the last
        best_after = np.full(kcount, big, dtype=np.int64)
        best_after[:-1] = np.minimum.accumulate(nxt[::-1])[::-1][1:]
        suffix[j] = np.minimum(cost[j] + best_after, big)
    chosen: list[int] = []
    target = int(suffix[0].min())
    prev = -1
    for j in range(n):
        r = next(r for r in range(prev + 1, kcount) if suffix[j, r] == target)
        chosen.append(r)
        target -= int(cost[j, r])
        prev = r
    return [ks[r] for r in chosen]


def gop_residual_frames(types: list[str], keyframes: list[int], key: int, mode: str) -> tuple[int, ...]:
    """The frames whose residuals make the residual of the GOP starting at keyframe `key`."""
    later = [k for k in keyframes if k > key]
    end = min(later) if later else len(types)
    inter = [i for i in range(key + 1, end) if types[i] == "P"]
    if not inter:
        inter = [i for i in range(key + 1, end) if types[i] == "B"]
    if not inter:
        return ()
    if mode == "first":
        return (inter[0],)
    if mode == "middle":
        return (inter[len(inter) // 2],)
    return tuple(inter)


def _fallback_residual_frame(types: list[str], index: int) -> tuple[int, ...]:
    for i in range(index, len(types)):
        if types[i] in ("P", "B"):
            return (i,)
    return ()


# ----------------------------------------------------------------------------------------
# Resizing
# ----------------------------------------------------------------------------------------


def resize(x: torch.Tensor, size: int, keep_aspect: bool = False) -> torch.Tensor:
    """[N, C, H, W] float -> [N, C, size, size]: bilinear, align_corners=False, no antialias;
    keep_aspect: short side to `size`, then a centre crop."""
    h, w = x.shape[-2:]
    if keep_aspect:
        short = min(h, w)
        nh = size if h == short else max(size, round(h * size / short))
        nw = size if w == short else max(size, round(w * size / short))
    else:
        nh = nw = size
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]


# ----------------------------------------------------------------------------------------
# Decoding (PyAV)
# ----------------------------------------------------------------------------------------


def _av_source(source: Source) -> Any:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return os.fspath(source)


def decode_frames(source: Source, stream: Stream, indices: list[int]) -> dict[int, np.ndarray]:
    """RGB uint8 [H, W, 3] (PyAV rgb24) of the frames `indices` (display order).

    Containers with timestamps: one seek per keyframe that starts a needed GOP, decoding from
    there up to the last needed frame of the GOP (a lone keyframe: its packet only). Raw
    Annex B (no timestamps), and containers whose seek lands after the keyframe (MPEG-TS):
    decodes in order from the start and stops after the last needed frame. Raises
    CorruptStream naming the file when PyAV fails or a frame does not come out.
    """
    import av

    wanted = sorted(set(indices))
    if not wanted:
        return {}
    frames = stream.frames
    pts = [f.pts for f in frames]
    timed = stream.container != "h264" and None not in pts and len(set(pts)) == len(pts)
    out: dict[int, np.ndarray] = {}
    try:
        with av.open(_av_source(source)) as container:
            vs = container.streams.video[0]
            if timed:
                try:
                    _decode_seeking(container, vs, stream, wanted, out)
                except _SeekMissed:  # e.g. MPEG-TS, where seeking is approximate
                    out.clear()
                    timed = False
        if not timed:
            with av.open(_av_source(source)) as container:
                _decode_in_order(container, container.streams.video[0], wanted, out)
    except av.FFmpegError as e:
        raise CorruptStream(f"PyAV could not decode the sampled frames ({e})", stream.name) from None
    missing = [i for i in wanted if i not in out]
    if missing:
        raise CorruptStream(f"frames {missing} (display order) did not come out of the decoder", stream.name)
    return out


class _SeekMissed(Exception):
    """The container's seek landed after the keyframe asked for."""


def _decode_seeking(container: Any, vs: Any, stream: Stream, wanted: list[int], out: dict[int, np.ndarray]) -> None:
    frames = stream.frames
    keys = [f.index for f in frames if f.key]
    index_of = {f.pts: f.index for f in frames}
    groups: dict[int, list[int]] = {}
    for i in wanted:
        before = [k for k in keys if k <= i]
        groups.setdefault(before[-1] if before else 0, []).append(i)
    ctx = vs.codec_context
    for key, targets in groups.items():
        container.seek(frames[key].pts, stream=vs, backward=True)  # also flushes the decoder
        todo = {frames[i].pts for i in targets}
        lone_key = targets == [key] and frames[key].key
        key_pts = frames[key].pts
        seen_key = False
        for packet in container.demux(vs):
            if packet.pts is not None and not seen_key:
                # In decoding order nothing before a keyframe is displayed after it: a later
                # timestamp before the keyframe's own packet means the seek overshot.
                if packet.pts > key_pts:
                    raise _SeekMissed
                seen_key = packet.pts == key_pts
            if lone_key:
                if packet.pts != key_pts:
                    continue  # the seek landed earlier (e.g. a recovery point not in the index)
                decoded = list(ctx.decode(packet)) + list(ctx.decode(None))  # drain: no lookahead
                ctx.flush_buffers()
            else:
                decoded = list(packet.decode())
            for frame in decoded:
                if frame.pts in todo:
                    out[index_of[frame.pts]] = frame.to_ndarray(format="rgb24")
                    todo.discard(frame.pts)
            if not todo or lone_key:
                break


def _decode_in_order(container: Any, vs: Any, wanted: list[int], out: dict[int, np.ndarray]) -> None:
    todo = set(wanted)
    for n, frame in enumerate(container.decode(vs)):  # output order = display order
        if n in todo:
            out[n] = frame.to_ndarray(format="rgb24")
            todo.discard(n)
            if not todo:
                return


# ----------------------------------------------------------------------------------------
# The front end
# ----------------------------------------------------------------------------------------


def residual_rgb(stream: Stream, indices: tuple[int, ...], matrix: np.ndarray) -> torch.Tensor:
    """float32 [3, height, width]: the sum of the residuals of `indices`, as RGB (zeros if none)."""
    h, w = stream.height, stream.width
    if not indices:
        return torch.zeros(3, h, w)
    planes = None
    for i in indices:
        r = stream.residual(i)
        cur = [torch.from_numpy(np.array(p, dtype=np.int32)) for p in (r.y, r.u, r.v)]
        planes = cur if planes is None else [a + b for a, b in zip(planes, cur)]
    return residual_to_rgb(*planes, matrix, height=h, width=w)


def sample_clip(path: Source, num_segments: int = 20, size: int = 224, residual: str = "middle",
                device: str | torch.device = "cpu", keep_aspect: bool = False) -> ClipSample:
    """Samples N = num_segments appearance frames and residual frames of an H.264 clip.

    See the module docstring for the policy. Raises codec.UnsupportedStream / CorruptStream
    (naming the file) for video the parser or PyAV cannot read; ValueError for bad arguments.
    """
    if residual not in RESIDUAL_MODES:
        raise ValueError(f"residual must be one of {RESIDUAL_MODES}, got {residual!r}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    device = torch.device(device)
    with open_stream(path) as s:
        n_frames = len(s.frames)
        if n_frames == 0:
            raise CorruptStream("no complete frames", s.name)
        types = [f.type for f in s.frames]
        keys = s.keyframes
        if len(set(keys)) >= num_segments:
            policy = "keyframes"
            frame_indices = choose_keyframes(keys, n_frames, num_segments)
            sources = [gop_residual_frames(types, keys, k, residual) for k in frame_indices]
        else:
            policy = "decoded"
            frame_indices = uniform_indices(n_frames, num_segments)
            sources = [_fallback_residual_frame(types, i) for i in frame_indices]

        matrix = rgb_matrix(s.sequence.get("matrix_coefficients"), bool(s.sequence.get("full_range")))
        rgb = decode_frames(path, s, frame_indices)
        res = {src: residual_rgb(s, src, matrix) for src in dict.fromkeys(sources)}
        fps, duration = s.fps, s.duration
        height, width, name = s.height, s.width, s.name

    frames_t = torch.stack([torch.from_numpy(rgb[i]).permute(2, 0, 1) for i in frame_indices])
    if frames_t.shape[-2:] != (height, width):
        raise CorruptStream(f"PyAV decoded {frames_t.shape[-1]}x{frames_t.shape[-2]} frames, "
                            f"the SPS says {width}x{height}", name)
    iframes = resize(frames_t.float(), size, keep_aspect).round_().clamp_(0, 255).to(torch.uint8)
    residuals = resize(torch.stack([res[src] for src in sources]), size, keep_aspect).to(torch.float16)
    return ClipSample(
        iframes=iframes.contiguous().to(device),
        residuals=residuals.contiguous().to(device),
        frame_indices=list(frame_indices),
        residual_indices=[src[0] if src else -1 for src in sources],
        residual_frames=list(sources),
        policy=policy,
        fps=fps,
        duration=duration,
    )
