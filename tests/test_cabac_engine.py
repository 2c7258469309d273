"""The CABAC arithmetic decoder against an encoder written from the standard (9.3.4)."""

from __future__ import annotations

import random

import _h264_testing
import pytest
from cabac_encoder import CabacEncoder

CONTEXTS = [0, 3, 11, 24, 40, 47, 54, 60, 64, 68, 73, 85, 105, 166, 227, 276, 399, 402, 426, 1000]


@pytest.mark.parametrize("seed", range(40))
def test_random_bins_round_trip(seed):
    rng = random.Random(seed)
    init_idc, qp = rng.choice([-1, 0, 1, 2]), rng.randint(0, 51)
    encoder = CabacEncoder(init_idc, qp)
    ops, bins = [], []
    for _ in range(rng.randint(1, 2000)):
        kind = rng.random()
        if kind < 0.75:
            ctx, value = rng.choice(CONTEXTS), int(rng.random() < rng.choice([0.05, 0.3, 0.5]))
            encoder.decision(ctx, value)
        elif kind < 0.97:
            ctx, value = -1, rng.randint(0, 1)
            encoder.bypass(value)
        else:
            ctx, value = -2, 0
            encoder.terminate(0)
        ops.append(ctx)
        bins.append(value)
    encoder.terminate(1)
    decoded = _h264_testing.cabac_bins(encoder.rbsp() + b"\0\0\0\0", init_idc, qp, ops + [-2])
    assert decoded[:-2] == bins and decoded[-2] == 1
    # With the standard's flush the decoder has read exactly to the rbsp_stop_one_bit.
    assert decoded[-1] == len(encoder.bits)


def test_codIOffset_510_is_rejected():
    with pytest.raises(_h264_testing.CorruptStream, match="510 or 511"):
        _h264_testing.cabac_bins(b"\xff\xff\xff", -1, 26, [3])
