"""Which frames and residuals a clip needs: the sampling policy, a pure function of the stream's
frame structure (no decoding, no I/O beyond what `Stream` already holds).

F frames, N segments, indices in display order:

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
* "decoded" (fewer than N distinct keyframes): frame round(u_j) = floor((2j+1)F / 2N); the
  residual is that frame's own if it is a P or B frame, else that of the next P or B frame in
  display order (which may lie in the next GOP), else zeros (residual index -1). `residual`
  does not apply here. With F < N frames, indices repeat.

The decoders share the last two helpers: `gop_groups` says which keyframe each wanted frame is
decoded from, `split_runs` cuts those GOPs into contiguous runs for parallel decoders.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CorruptStream

if TYPE_CHECKING:
    from .stream import Stream

__all__ = [
    "RESIDUAL_MODES",
    "choose_keyframes",
    "gop_groups",
    "gop_residual_frames",
    "plan_clip",
    "split_runs",
    "uniform_indices",
]

RESIDUAL_MODES = ("first", "middle", "sum")


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


def plan_clip(s: Stream, num_segments: int, residual: str) -> tuple[str, list[int], list[tuple[int, ...]]]:
    """(policy, frame indices, residual sources per segment) of a clip: see the module docstring."""
    n_frames = len(s.frames)
    if n_frames == 0:
        raise CorruptStream("no complete frames", s.name)
    types = [f.type for f in s.frames]
    keys = s.keyframes
    if len(set(keys)) >= num_segments:
        frame_indices = choose_keyframes(keys, n_frames, num_segments)
        return "keyframes", frame_indices, [gop_residual_frames(types, keys, k, residual) for k in frame_indices]
    frame_indices = uniform_indices(n_frames, num_segments)
    return "decoded", frame_indices, [_fallback_residual_frame(types, i) for i in frame_indices]


def gop_groups(stream: Stream, wanted: list[int]) -> dict[int, list[int]]:
    """The wanted frames (display indices) by the decoding index of the keyframe decoding
    starts from: the listed keyframe that precedes them in display order, else (frames before
    the first listed keyframe, as an edit list can leave) the stream's first keyframe, listed or
    not."""
    keys = [f.index for f in stream.frames if f.key]
    entry = next((p.decode_index for p in stream.pictures if p.key), 0)
    groups: dict[int, list[int]] = {}
    for i in wanted:
        k = bisect.bisect_right(keys, i)
        groups.setdefault(stream.frames[keys[k - 1]].decode_index if k else entry, []).append(i)
    return groups


def split_runs(items: list[Any], parts: int) -> list[list[Any]]:
    """`items` in at most `parts` contiguous runs of near-equal length (none empty)."""
    parts = max(1, min(parts, len(items)))
    q, r = divmod(len(items), parts)
    runs, at = [], 0
    for p in range(parts):
        n = q + (p < r)
        runs.append(items[at:at + n])
        at += n
    return runs
