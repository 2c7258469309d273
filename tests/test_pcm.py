"""I_PCM macroblocks, which libx264 does not emit: written by hand in CAVLC and in CABAC (where
the arithmetic decoder must restart after the samples, 9.3.1.2)."""

from __future__ import annotations

import numpy as np
from cabac_encoder import CabacEncoder
from h264_writer import BitWriter, Pps, Slice, Sps, nal

from vccv_gpu import codec

PCM_BYTES = bytes(range(256)) + bytes(128)  # 256 luma + 2 x 64 chroma samples


def slice_header_bits(sps: Sps, pps: Pps) -> BitWriter:
    """The header of an IDR I slice as Slice writes it, without slice data."""
    full = Slice(sps, pps, 2, idr=True)
    w = BitWriter().ue(0).ue(2).ue(pps.id).u(sps.log2_max_frame_num, 0).ue(0)
    w.u(sps.log2_max_poc_lsb, 0)
    w.flag(0).flag(0)  # dec_ref_pic_marking of an IDR
    w.se(full.qp_delta)
    if pps.deblocking_filter_control_present:
        w.ue(1)
    return w


def test_cavlc_pcm_then_intra16x16():
    sps, pps = Sps(width_mbs=2, height_map_units=1), Pps()
    w = slice_header_bits(sps, pps)
    w.ue(25)  # mb_type I_PCM
    w.bits += [0] * (-len(w.bits) % 8)  # pcm_alignment_zero_bit
    for b in PCM_BYTES:
        w.u(8, b)
    w.ue(1).ue(0).se(0).u(6, 3)  # I_16x16_0_0_0, chroma DC pred, qp delta 0, empty DC block (nC 16: "000011")
    data = sps.nal() + pps.nal() + nal(5, w.rbsp())
    with codec.open(data) as s:
        mb = s.macroblocks(0)
        assert mb.mb_type.tolist() == [[4, 0]]
        assert not s.residual(0).y.any()


def test_cabac_pcm_restarts_the_engine():
    sps, pps = Sps(width_mbs=2, height_map_units=1), Pps(cabac=True)
    w = slice_header_bits(sps, pps)
    w.bits += [1] * (-len(w.bits) % 8)  # cabac_alignment_one_bit
    qp = 26
    first = CabacEncoder(-1, qp)
    first.decision(3, 1)  # mb_type bin 0 (no neighbours: ctxIdxInc 0): not I_NxN
    first.terminate(1)  # I_PCM, then the encoder flushes
    bits = w.bits + first.bits
    bits += [0] * (-len(bits) % 8)  # pcm_alignment_zero_bit
    pcm_bits = [int(c) for b in PCM_BYTES for c in f"{b:08b}"]
    # The second macroblock: the engine restarts, the contexts carry on.
    second = CabacEncoder(-1, qp)
    second.states = first.states
    second.terminate(0)  # end_of_slice_flag after the I_PCM macroblock
    second.decision(3 + 1, 1)  # mb_type bin 0: the left neighbour is I_PCM (not I_NxN) -> ctxIdxInc 1
    second.terminate(0)  # not I_PCM
    for ctx in (3 + 3, 3 + 4, 3 + 6, 3 + 7):
        second.decision(ctx, 0)  # I_16x16_0_0_0: no luma AC, no chroma, prediction mode 0
    second.decision(64 + 0, 0)  # intra_chroma_pred_mode 0 (the I_PCM neighbour gives ctxIdxInc 0)
    second.decision(60 + 0, 0)  # mb_qp_delta 0
    second.decision(85 + 0 + 3, 0)  # coded_block_flag of the DC block (I_PCM left and no top: 1 + 2)
    second.terminate(1)  # end_of_slice_flag
    rbsp_bits = bits + pcm_bits + second.bits
    rbsp_bits += [0] * (-len(rbsp_bits) % 8)
    rbsp = bytes(int("".join(map(str, rbsp_bits[i:i + 8])), 2) for i in range(0, len(rbsp_bits), 8))
    data = sps.nal() + pps.nal() + nal(5, rbsp)
    with codec.open(data) as s:
        mb = s.macroblocks(0)
        assert mb.mb_type.tolist() == [[4, 0]] and mb.cbp.tolist() == [[0x2F, 0]]
        assert not np.any(s.residual(0).y)
