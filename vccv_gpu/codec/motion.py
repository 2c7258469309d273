"""Motion vectors (and residuals) of whole videos, straight from the bitstream.

    for f in codec.extract_motion("clip.mp4", threads=4):
        f.index, f.type, f.pts, f.macroblocks.mv        # [2, H4, W4, 2] quarter pels

Pictures are entropy-decoded on a thread pool (the parser releases the GIL), a few ahead of
the one being yielded: memory is bounded by the thread count, not by the video's length. B
pictures read their co-located picture's motion, which the parser's cache shares between
threads (a picture parsed twice parses to the same result). `python -m vccv_gpu.codec motion`
writes the same to disk (motion_cli.py).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .demux import Source
from .stream import Coefficients, Macroblocks, Residual, Stream
from .stream import open as open_stream


@dataclass(frozen=True)
class MotionFrame:
    """One frame's compressed-domain content (display order)."""

    index: int
    type: str                       # "I", "P" or "B"
    pts: int | None
    key: bool
    macroblocks: Macroblocks        # as Stream.macroblocks(index)
    residual: Residual | None       # as Stream.residual(index), when asked for
    coefficients: Coefficients | None  # as Stream.coefficients(index), when asked for


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def motion_frames(stream: Stream, frames: Iterable[int] | None = None, *, residual: bool = False,
                  coefficients: bool = False, threads: int | None = None) -> Iterator[MotionFrame]:
    """`extract_motion` over an open stream."""
    indices = list(range(len(stream.frames)) if frames is None else frames)
    for i in indices:
        if not 0 <= i < len(stream.frames):
            raise IndexError(f"{stream.name}: frame {i} is not in 0..{len(stream.frames) - 1}")
    threads = threads or default_threads()

    def read(i: int) -> MotionFrame:
        f = stream.frames[i]
        # The residual's parse first: the macroblocks come from it; alone, they skip the scaling.
        planes = stream.residual(i) if residual else None
        compact = stream.coefficients(i) if coefficients else None
        return MotionFrame(i, f.type, f.pts, f.key, stream.macroblocks(i), planes, compact)

    if threads == 1:
        yield from map(read, indices)
        return
    # Whole videos are parsed in decoding order, I and P pictures `lead` places early: B
    # pictures then find their co-located picture parsed (held until its turn, so the parser
    # finds it again) instead of waiting for it, and I/P pictures need no other. Frames are
    # yielded in display order. Up to `held` pictures are in flight or parsed and waiting for
    # their turn: twice the lead, since the early anchors wait there while the pool must still
    # have pictures to parse (with just the lead, a tenth of the threads' time went idle).
    lead, held = 2 * threads, 4 * threads
    order = indices if frames is not None else sorted(
        indices, key=lambda i: stream.frames[i].decode_index - (lead if stream.frames[i].type != "B" else 0))
    with ThreadPoolExecutor(threads, thread_name_prefix="vccv-motion") as pool:
        submitted: deque[tuple[int, Future[MotionFrame]]] = deque()
        ahead = iter(order)
        try:
            for i in indices:
                # Submit until this frame is in flight and `held` pictures are.
                while not any(j == i for j, _ in submitted) or len(submitted) < held:
                    nxt = next(ahead, None)
                    if nxt is None:
                        break
                    submitted.append((nxt, pool.submit(read, nxt)))
                k = next(k for k, (j, _) in enumerate(submitted) if j == i)
                future = submitted[k][1]
                del submitted[k]
                yield future.result()
        finally:
            for _, future in submitted:
                future.cancel()


def extract_motion(path: Source, *, frames: Iterable[int] | None = None, residual: bool = False,
                   coefficients: bool = False, threads: int | None = None) -> Iterator[MotionFrame]:
    """Every frame's macroblocks (types, QPs, vectors, reference indices) in display order, or
    those of the display indices `frames`; with `residual` / `coefficients` also those.
    `threads` pictures are parsed at a time (default: every core this process may use); the
    results are the same whatever the thread count. Raises codec.CorruptStream /
    UnsupportedStream naming the file, like `codec.open` and `Stream.macroblocks`."""
    with open_stream(path) as stream:
        yield from motion_frames(stream, frames, residual=residual, coefficients=coefficients, threads=threads)
