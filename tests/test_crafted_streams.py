"""Header-level streams written bit by bit: POC types, mmco5, several live parameter sets,
scaling-list fall-backs, and the unsupported and corrupt cases libx264 never produces."""

from __future__ import annotations

import numpy as np
import pytest
from h264_writer import BitWriter, Pps, Slice, Sps, nal

from vccv_gpu import codec

I, P, B, SP = 2, 0, 1, 3  # noqa: E741 - slice_type names, as the standard writes them


def order(stream: codec.Stream) -> list[int]:
    return [f.decode_index for f in stream.frames]


def test_poc_type_1_orders_non_reference_b_pictures():
    sps = Sps(poc_type=1, offset_for_ref_frame=[4], offset_for_non_ref_pic=-2)
    pps = Pps()
    # Expected POCs (8.2.1.2): I 0, P(fn1) 4, B(fn2, non-ref) 2, P(fn2) 8, B(fn3, non-ref) 6.
    pics = [Slice(sps, pps, I, idr=True), Slice(sps, pps, P, frame_num=1),
            Slice(sps, pps, B, frame_num=2, nal_ref_idc=0), Slice(sps, pps, P, frame_num=2),
            Slice(sps, pps, B, frame_num=3, nal_ref_idc=0)]
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        assert order(s) == [0, 2, 1, 4, 3]
        assert [f.type for f in s.frames] == list("IBPBP")
        assert [f.reference for f in s.frames] == [True, False, True, False, True]


def test_poc_type_1_delta_pic_order_cnt():
    sps = Sps(poc_type=1, offset_for_ref_frame=[2])
    pps = Pps()
    # Equal expected counts; the per-slice delta_pic_order_cnt[0] reverses the two P pictures.
    pics = [Slice(sps, pps, I, idr=True), Slice(sps, pps, P, frame_num=1, delta_poc=(10, 0)),
            Slice(sps, pps, P, frame_num=2, delta_poc=(0, 0))]
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        assert order(s) == [0, 2, 1]


@pytest.mark.parametrize("poc_type", [0, 1, 2])
def test_frame_num_and_poc_lsb_wrap(poc_type):
    sps = Sps(poc_type=poc_type, log2_max_frame_num=4, log2_max_poc_lsb=4)
    pps = Pps()
    count = 40  # frame_num wraps at 16 and pic_order_cnt_lsb (2 per frame) at 16 repeatedly
    pics = [Slice(sps, pps, I if n == 0 else P, idr=n == 0, frame_num=n % 16, poc_lsb=(2 * n) % 16)
            for n in range(count)]
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        assert order(s) == list(range(count))


def test_mmco5_starts_a_new_poc_period():
    sps = Sps(poc_type=0)
    pps = Pps()
    pics = [Slice(sps, pps, I, idr=True, poc_lsb=0), Slice(sps, pps, P, frame_num=1, poc_lsb=8),
            Slice(sps, pps, P, frame_num=2, poc_lsb=20, mmcos=[(5,)]),
            # after mmco5 the counts restart from 0: this P is 8 and the B before it 4
            Slice(sps, pps, P, frame_num=1, poc_lsb=8),
            Slice(sps, pps, B, frame_num=2, poc_lsb=4, nal_ref_idc=0)]
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        assert order(s) == [0, 1, 2, 4, 3]


def test_several_parameter_sets_live():
    sps0, sps1 = Sps(id=0, poc_type=0), Sps(id=3, poc_type=2)
    pps_a, pps_b, pps_c = Pps(id=0, sps_id=0), Pps(id=5, sps_id=0, cabac=True), Pps(id=9, sps_id=3)
    header = sps0.nal() + sps1.nal() + pps_a.nal() + pps_b.nal() + pps_c.nal()
    pics = [Slice(sps0, pps_a, I, idr=True), Slice(sps0, pps_b, P, frame_num=1, poc_lsb=2),
            # two slices of one picture, then a picture that switches PPS (a new picture)
            Slice(sps0, pps_a, P, frame_num=2, poc_lsb=4, mb_count=6),
            Slice(sps0, pps_a, P, frame_num=2, poc_lsb=4, first_mb=6),
            Slice(sps0, pps_b, P, frame_num=3, poc_lsb=6),
            Slice(sps1, pps_c, I, idr=True, idr_pic_id=1), Slice(sps1, pps_c, P, frame_num=1)]
    with codec.open(header + b"".join(p.nal() for p in pics)) as s:
        assert s.entropy == "cavlc"
        assert [f.num_slices for f in s.frames] == [1, 1, 2, 1, 1, 1]
        assert [s.slice_headers(i)[0]["pps_id"] for i in range(6)] == [0, 5, 0, 5, 9, 9]
        assert [f.key for f in s.frames] == [True, False, False, False, True, False]
        assert order(s) == list(range(6))


def test_cropping_and_vui_timing():
    sps = Sps(width_mbs=21, height_map_units=16, crop=(0, 3, 0, 3), vui_timing=(1001, 60000))
    pps = Pps()
    with codec.open(sps.nal() + pps.nal() + Slice(sps, pps, I, idr=True).nal()) as s:
        assert (s.coded_width, s.coded_height) == (336, 256)
        assert (s.width, s.height) == (330, 250)
        assert s.fps == pytest.approx(30000 / 1001)


def test_progressive_frames_in_an_interlace_capable_sps():
    sps = Sps(frame_mbs_only=False, height_map_units=3)  # frames of 2 * 3 macroblock rows
    pps = Pps()
    with codec.open(sps.nal() + pps.nal() + Slice(sps, pps, I, idr=True).nal()) as s:
        assert s.coded_height == 96


# Table 7-3/7-4 default lists in raster order (as x264's JVT matrices are written).
DEFAULT_4x4_INTRA = np.array([6, 13, 20, 28, 13, 20, 28, 32, 20, 28, 32, 37, 28, 32, 37, 42]).reshape(4, 4)
DEFAULT_4x4_INTER = np.array([10, 14, 20, 24, 14, 20, 24, 27, 20, 24, 27, 30, 24, 27, 30, 34]).reshape(4, 4)
ZIGZAG_4x4 = [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15]


def raster(scan_values: list[int]) -> np.ndarray:
    out = np.zeros(16, dtype=int)
    out[ZIGZAG_4x4] = scan_values
    return out.reshape(4, 4)


def test_scaling_list_fall_back_rules():
    custom0 = list(range(4, 20))
    custom4 = [(7 * k) % 60 + 4 for k in range(16)]
    custom8 = [16 + (k % 9) for k in range(64)]
    # SPS: Intra Y explicit, Cb absent (-> Intra Y), Cr default, Inter Y absent (-> default),
    # Inter Cb explicit, Inter Cr absent (-> Inter Cb); 8x8 Intra Y absent, Inter Y explicit.
    sps = Sps(scaling=[custom0, None, "default", None, custom4, None, None, custom8])
    pps_flat_fallback = Pps(id=0, transform_8x8_mode=True)
    # PPS (rule B): Intra Y absent -> the SPS's Intra Y; Inter Y default; rest follow.
    pps_rule_b = Pps(id=1, transform_8x8_mode=True, scaling=[None, None, None, "default", None, custom0, None, None])
    pics = [Slice(sps, pps_flat_fallback, I, idr=True), Slice(sps, pps_rule_b, P, frame_num=1, poc_lsb=2)]
    stream = sps.nal() + pps_flat_fallback.nal() + pps_rule_b.nal() + b"".join(p.nal() for p in pics)
    with codec.open(stream) as s:
        w4, w8 = s.scaling_matrices(0)
        expected = [raster(custom0), raster(custom0), DEFAULT_4x4_INTRA, DEFAULT_4x4_INTER,
                    raster(custom4), raster(custom4)]
        np.testing.assert_array_equal(w4, np.stack(expected))
        assert w8[1].ravel().tolist() != [16] * 64 and w8[0, 0, 0] == 6  # Default_8x8_Intra starts at 6
        w4b, w8b = s.scaling_matrices(1)
        expected_b = [raster(custom0), raster(custom0), raster(custom0), DEFAULT_4x4_INTER,
                      DEFAULT_4x4_INTER, raster(custom0)]
        np.testing.assert_array_equal(w4b, np.stack(expected_b))
        np.testing.assert_array_equal(w8b[:2], w8[:2])  # 8x8 lists fall back to the SPS's


def test_flat_without_scaling_matrices():
    sps, pps = Sps(), Pps(transform_8x8_mode=True)
    with codec.open(sps.nal() + pps.nal() + Slice(sps, pps, I, idr=True).nal()) as s:
        w4, w8 = s.scaling_matrices(0)
        assert (w4 == 16).all() and (w8 == 16).all()
        assert s.sequence["transform_8x8_mode"] is True


@pytest.mark.parametrize("case, message", [
    ("422", "4:2:2"), ("10bit", "bit depth 10"), ("field", "field coding"), ("mbaff", "MBAFF"),
    ("fmo", "FMO"), ("aso", "arbitrary slice order"), ("partition", "data partitioning"), ("sp", "SP/SI"),
])
def test_unsupported(case, message):
    sps = Sps(profile_idc=66 if case == "aso" else 100)
    pps = Pps()
    slices = [Slice(sps, pps, I, idr=True)]
    if case == "422":
        sps.profile_idc, sps.chroma_format_idc = 122, 2
    elif case == "10bit":
        sps.profile_idc, sps.bit_depth = 110, 10
    elif case == "field":
        sps.frame_mbs_only = False
        slices = [Slice(sps, pps, I, idr=True, field_pic=True)]
    elif case == "mbaff":
        sps.frame_mbs_only, sps.mbaff = False, True
    elif case == "fmo":
        pps.num_slice_groups = 2
    elif case == "aso":
        slices = [Slice(sps, pps, I, idr=True, first_mb=6), Slice(sps, pps, I, idr=True, first_mb=0)]
    elif case == "sp":
        sps.profile_idc = 88
        slices += [Slice(sps, pps, SP, frame_num=1, poc_lsb=2)]
    data = sps.nal() + pps.nal() + b"".join(x.nal() for x in slices)
    if case == "partition":
        data += Slice(sps, pps, P, frame_num=1, poc_lsb=2).nal()[:4] + b"\x62" + \
            Slice(sps, pps, P, frame_num=1, poc_lsb=2).nal()[5:]  # the same header as partition A
    with pytest.raises(codec.UnsupportedStream, match=message):
        codec.open(data)


def corrupt_cases():
    sps, pps = Sps(), Pps()
    good = sps.nal() + pps.nal() + Slice(sps, pps, I, idr=True).nal()
    yield "missing PPS", good + Slice(sps, Pps(id=7), P, frame_num=1).nal() + good, "missing PPS 7"
    yield "forbidden bit", good + b"\0\0\1\x81\x00" + good, "forbidden_zero_bit"
    sps_bad_frame_num = BitWriter().u(24, 0x640028).ue(0).ue(1).ue(0).ue(0).flag(0).flag(0).ue(13).rbsp()
    yield "frame_num bits", nal(7, sps_bad_frame_num) + good, "log2_max_frame_num_minus4"
    yield "long Exp-Golomb", good + nal(1, BitWriter().u(40, 0).u(8, 0xff).rbsp()) + good, "Exp-Golomb"
    yield "bipred idc 3", sps.nal() + nal(8, BitWriter().ue(0).ue(0).flag(0).flag(0).ue(0).ue(0).ue(0)
                                           .flag(0).u(2, 3).rbsp()) + good, "weighted_bipred_idc"
    yield "P in IDR", sps.nal() + pps.nal() + Slice(sps, pps, P, idr=True).nal() + good, "IDR picture with a P"
    yield "cut slice header", good + good[:-1] + Slice(sps, pps, P, frame_num=1).nal()[:6] + good, "past the end"
    yield "SPS trailing data", nal(7, sps.nal()[5:] + b"\x55\x55") + pps.nal() + good, \
        "SPS: unexpected data before rbsp_trailing_bits"


@pytest.mark.parametrize("name, data, message", list(corrupt_cases()), ids=[c[0] for c in corrupt_cases()])
def test_corrupt(name, data, message):
    with pytest.raises(codec.CorruptStream, match=message) as info:
        codec.open(data)
    assert info.value.path == "<bytes>"


def test_corrupt_names_the_picture():
    sps, pps = Sps(), Pps()
    pics = [Slice(sps, pps, I, idr=True)] + [Slice(sps, pps, P, frame_num=n, poc_lsb=2 * n) for n in range(1, 4)]
    data = sps.nal() + pps.nal() + b"".join(p.nal() for p in pics) + Slice(sps, Pps(id=4), P, frame_num=4).nal()
    with pytest.raises(codec.CorruptStream, match=r"picture 4 \(decoding order\)") as info:
        codec.open(data + pics[0].nal())
    assert info.value.decode_index == 4


def test_cut_final_slice_is_truncation_not_corruption():
    sps, pps = Sps(), Pps()
    pics = [Slice(sps, pps, I, idr=True)] + [Slice(sps, pps, P, frame_num=n, poc_lsb=2 * n) for n in range(1, 4)]
    data = sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)
    cut = data + Slice(sps, pps, P, frame_num=4, poc_lsb=8).nal()[:6]
    with pytest.warns(UserWarning, match="truncated"):
        s = codec.open(cut)
    assert s.truncated and len(s.frames) == 4
    # A cut second slice of the last picture drops that picture: it is incomplete.
    two_slices = data + Slice(sps, pps, P, frame_num=4, poc_lsb=8, mb_count=6).nal() + \
        Slice(sps, pps, P, frame_num=4, poc_lsb=8, first_mb=6).nal()[:7]
    with pytest.warns(UserWarning, match="truncated"):
        s = codec.open(two_slices)
    assert s.truncated and len(s.frames) == 4


def test_leading_slices_without_parameter_sets_are_skipped():
    sps, pps = Sps(), Pps()
    orphan = Slice(sps, pps, P, frame_num=3, poc_lsb=6).nal()
    data = orphan + orphan + sps.nal() + pps.nal() + Slice(sps, pps, I, idr=True).nal()
    with codec.open(data) as s:
        assert len(s.frames) == 1 and s.frames[0].key
    with pytest.raises(codec.CorruptStream, match="2 slices came without their SPS/PPS"):
        codec.open(orphan + orphan)


def ref_lists(stream: codec.Stream, decode_index: int) -> list[list[tuple[int, bool]]]:
    frame = next(f for f in stream.frames if f.decode_index == decode_index)
    return [list(map(tuple, lst)) for lst in stream.slice_headers(frame.index)[0]["ref_pic_lists"]]


def test_p_lists_order_by_pic_num_then_long_term():
    sps, pps = Sps(max_num_ref_frames=4, log2_max_frame_num=4), Pps()
    pics = [Slice(sps, pps, I, idr=True, long_term_reference=True)]  # picture 0: long-term index 0
    pics += [Slice(sps, pps, P, frame_num=n, poc_lsb=2 * n) for n in range(1, 4)]
    pics += [Slice(sps, pps, P, frame_num=4, poc_lsb=8, num_ref_idx=(4, 1))]
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        # PicNum descending (3, 2, 1), then the long-term picture.
        assert ref_lists(s, 4)[0] == [(3, False), (2, False), (1, False), (0, True)]
        assert ref_lists(s, 1)[0] == [(0, True)]


def test_sliding_window_and_frame_num_wrap():
    sps, pps = Sps(max_num_ref_frames=2, log2_max_frame_num=4), Pps()
    pics = [Slice(sps, pps, I, idr=True)]
    pics += [Slice(sps, pps, P, frame_num=n % 16, poc_lsb=(2 * n) % 64, num_ref_idx=(2, 1)) for n in range(1, 20)]
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        for n in range(2, 20):  # the two most recent frames, newest first, across the wrap at 16
            assert ref_lists(s, n)[0] == [(n - 1, False), (n - 2, False)]


def test_b_lists_by_poc_and_the_list1_swap():
    sps, pps = Sps(max_num_ref_frames=4), Pps()
    # Decoding order: I0 (POC 0), P1 (POC 8), P2 (POC 4), then B pictures between.
    pics = [Slice(sps, pps, I, idr=True), Slice(sps, pps, P, frame_num=1, poc_lsb=8),
            Slice(sps, pps, P, frame_num=2, poc_lsb=4),
            Slice(sps, pps, B, frame_num=3, poc_lsb=6, nal_ref_idc=0, num_ref_idx=(3, 3)),
            Slice(sps, pps, B, frame_num=3, poc_lsb=10, nal_ref_idc=0, num_ref_idx=(2, 2))]
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        l0, l1 = ref_lists(s, 3)
        assert [e[0] for e in l0] == [2, 0, 1]  # POC 4, 0 (before, descending), then 8
        assert [e[0] for e in l1] == [1, 2, 0]  # POC 8 (after), then 4, 0
        l0, l1 = ref_lists(s, 4)  # POC 10: every reference is before; list1 == list0 -> swap
        assert [e[0] for e in l0] == [1, 2] and [e[0] for e in l1] == [2, 1]


def test_list_modification_and_memory_management():
    sps, pps = Sps(max_num_ref_frames=4), Pps()
    pics = [Slice(sps, pps, I, idr=True)] + [Slice(sps, pps, P, frame_num=n, poc_lsb=2 * n) for n in (1, 2, 3)]
    # Picture 4: initial list [3, 2, 1]; modification idc 0 with abs_diff_pic_num_minus1 3 moves
    # PicNum 4 - 4 = 0 to the front. Then mmco 3 makes PicNum 2 long-term index 1, mmco 1 drops
    # PicNum 3. Picture 5: initial [4, 1, 0 | long-term 2], modification puts long-term 1 first.
    pics.append(Slice(sps, pps, P, frame_num=4, poc_lsb=8, num_ref_idx=(3, 1), modifications=([(0, 3)], []),
                      mmcos=[(3, 1, 1), (1, 0)]))
    pics.append(Slice(sps, pps, P, frame_num=5, poc_lsb=10, num_ref_idx=(3, 1),
                      modifications=([(2, 1)], [])))  # long_term_pic_num 1 first
    with codec.open(sps.nal() + pps.nal() + b"".join(p.nal() for p in pics)) as s:
        assert ref_lists(s, 4)[0] == [(0, False), (3, False), (2, False)]
        assert ref_lists(s, 5)[0] == [(2, True), (4, False), (1, False)]
