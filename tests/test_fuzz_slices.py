"""Hostile slice data: flipped bits, truncated and spliced slices of generated CAVLC and CABAC clips.
Every case either parses or raises CorruptStream naming the frame; nothing crashes or hangs."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from vccv_gpu import codec

CASES = 6000  # a few seconds on a CI core


def split_nals(data: bytes) -> list[bytes]:
    """Annex B NAL units with their 4-byte start codes (make_clip's raw streams use them)."""
    starts = [m.start() for m in re.finditer(b"\0\0\0\1", data)]
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


@pytest.fixture(scope="module")
def streams(clip_factory):
    clips = [clip_factory(".h264", profile="high", entropy="cavlc", bframes=2, frames=8, gop=4, size=(64, 48)),
             clip_factory(".h264", profile="baseline", entropy="cavlc", slices=3, frames=6, size=(80, 48), crf=10),
             clip_factory(".h264", profile="high", entropy="cabac", bframes=3, frames=8, gop=8, size=(64, 48)),
             clip_factory(".h264", profile="main", entropy="cabac", bframes=2, direct="temporal", refs=3,
                          frames=8, size=(48, 48), crf=12)]
    return [split_nals(p.read_bytes()) for p in clips]


def mutate(nals: list[bytes], rng: np.random.Generator) -> bytes:
    slices = [i for i, n in enumerate(nals) if n[4] & 0x1F in (1, 5)]
    out = list(nals)
    target = int(rng.choice(slices))
    nal = bytearray(out[target])
    kind = rng.integers(0, 3)
    if kind == 0:  # flip a few bits after the NAL header
        for _ in range(rng.integers(1, 6)):
            pos = int(rng.integers(5, len(nal)))
            nal[pos] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # truncate the slice
        nal = nal[:int(rng.integers(6, len(nal)))] if len(nal) > 6 else nal
    else:  # splice: the head of this slice with the tail of another
        other = out[int(rng.choice(slices))]
        cut_a, cut_b = int(rng.integers(5, len(nal))), int(rng.integers(5, len(other)))
        nal = nal[:cut_a] + other[cut_b:]
    out[target] = bytes(nal)
    return b"".join(out)


def test_hostile_slice_data_never_crashes(streams):
    rng = np.random.default_rng(2024)
    outcomes = {"parsed": 0, "corrupt": 0, "unsupported": 0}
    for case in range(CASES):
        data = mutate(streams[case % len(streams)], rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # truncation warnings
                s = codec.open(data)
        except codec.CorruptStream:
            outcomes["corrupt"] += 1
            continue
        except codec.UnsupportedStream:
            outcomes["unsupported"] += 1
            continue
        for frame in s.frames:
            try:
                s.macroblocks(frame.index)
                s.residual(frame.index)
                outcomes["parsed"] += 1
            except codec.CorruptStream as e:
                assert e.decode_index == frame.decode_index and f"frame {frame.index}" in str(e)
                outcomes["corrupt"] += 1
            except codec.UnsupportedStream:
                outcomes["unsupported"] += 1
    # Both outcomes occur: the mutations reach the parser's checks and also leave decodable data.
    assert outcomes["parsed"] > CASES and outcomes["corrupt"] > CASES // 4, outcomes
