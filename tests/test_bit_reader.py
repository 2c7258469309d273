"""The bounds-checked bit reader (7.2, 9.1): round trips and reads past the end."""

from __future__ import annotations

import _h264_testing
import numpy as np
import pytest
from h264_writer import BitWriter, nal


def test_round_trip_random_fields():
    rng = np.random.default_rng(0)
    w, codes, expected = BitWriter(), [], []
    for _ in range(2000):
        kind = rng.integers(0, 4)
        if kind == 0:
            n = int(rng.integers(1, 33))
            v = int(rng.integers(0, 1 << n))
            w.u(n, v)
            codes.append(f"u:{n}")
        elif kind == 1:
            v = int(rng.choice([rng.integers(0, 40), rng.integers(0, 1 << 31), (1 << 32) - 2]))
            w.ue(v)
            codes.append("ue")
        elif kind == 2:
            v = int(rng.integers(-(1 << 31) + 1, 1 << 31))
            w.se(v)
            codes.append("se")
        else:
            top = int(rng.integers(1, 20))
            v = int(rng.integers(0, top + 1))
            if top == 1:
                w.flag(not v)  # te(v) with range 1 is one inverted bit
            else:
                w.ue(v)
            codes.append(f"te:{top}")
        expected.append(v)
    codes.append("more_rbsp_data")
    expected.append(False)
    assert _h264_testing.read_bits(w.rbsp(), codes) == expected


def test_more_rbsp_data_and_alignment():
    rbsp = BitWriter().u(3, 5).rbsp()  # 101 1 0000
    codes = ["more_rbsp_data", "u:3", "more_rbsp_data", "byte_aligned"]
    assert _h264_testing.read_bits(rbsp, codes) == [True, 5, False, False]
    # cabac_zero_words after the trailing bits do not count as data
    assert _h264_testing.read_bits(rbsp + b"\0\0\0", ["u:3", "more_rbsp_data"]) == [5, False]


@pytest.mark.parametrize("codes", [["u:32", "u:1"], ["u:8", "ue"], ["se", "se", "se"]])
def test_reading_past_the_end_raises(codes):
    with pytest.raises(_h264_testing.CorruptStream, match="past the end"):
        _h264_testing.read_bits(b"\x00\x00\x00\x01", codes + ["u:32"] * 2)


def test_exp_golomb_longer_than_32_bits_raises():
    with pytest.raises(_h264_testing.CorruptStream, match="longer than 32 bits"):
        _h264_testing.read_bits(b"\0" * 5 + b"\xff" * 5, ["ue"])


def test_emulation_prevention_removal():
    payload = bytes([0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 7, 0, 0])
    escaped = nal(1, payload)[5:]  # without start code and header
    assert escaped != payload and b"\0\0\3" in escaped
    assert _h264_testing.remove_emulation_prevention(escaped) == payload


def _without_emulation_prevention(escaped: bytes) -> bytes:
    """7.3.1's loop, byte by byte: a 0x03 after two zero bytes is dropped."""
    out, zeros = bytearray(), 0
    for b in escaped:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


@pytest.mark.parametrize("seed", range(20))
def test_emulation_prevention_removal_matches_the_bytewise_rule(seed):
    """Runs of zeros and threes in every arrangement (00 00 03 03, 00 00 03 00 00 03, a trailing
    00 00 03, ...), against the syntax's own loop."""
    rng = np.random.default_rng(seed)
    for size in (0, 1, 2, 3, 4, 5, 17, 300):
        data = bytes(rng.choice([0, 0, 0, 3, 3, 1, 0xFF], size=size).astype(np.uint8))
        assert _h264_testing.remove_emulation_prevention(data) == _without_emulation_prevention(data), data.hex()
