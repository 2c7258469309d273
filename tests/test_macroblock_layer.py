"""The macroblock layer (CAVLC and CABAC) against FFmpeg: motion vectors of every P and B frame,
exact inter residuals, and intra self-consistency, on a matrix of generated clips."""

from __future__ import annotations

import numpy as np
import pytest
from mv_oracle import MB_DIRECT, MB_INTRA, MB_PCM, MB_SKIP, decode_with_motion, expected_mv_grid
from residual_oracle import inter_residual_oracle

from tools.clips import read_cqm_file, write_cqm_file
from vccv_gpu import codec

# CAVLC: baseline, main and high; 1/4 slices; refs 1/4; sub-pel and full-pel; odd sizes; long GOP.
MV_MATRIX = {
    "baseline": (".h264", dict(profile="baseline", entropy="cavlc")),
    "baseline-slices4-refs4": (".mp4", dict(profile="baseline", entropy="cavlc", slices=4, refs=4, size=(176, 144))),
    "main-b3-refs4": (".mkv", dict(profile="main", entropy="cavlc", bframes=3, refs=4)),
    "high-8x8-slices4": (".mp4", dict(profile="high", entropy="cavlc", slices=4, size=(176, 144))),
    "high-fullpel-odd": (".ts", dict(profile="high", entropy="cavlc", subpel=False, size=(330, 250), frames=12)),
    "high-odd-b3-refs4": (".mp4", dict(profile="high", entropy="cavlc", bframes=3, refs=4, size=(202, 138))),
    "main-gop250-lowcrf": (".h264", dict(profile="main", entropy="cavlc", gop=250, frames=40, crf=8)),
    "high-highcrf-nodeblock": (".mp4", dict(profile="high", entropy="cavlc", crf=40, deblock=False)),
    # CABAC: main and high, 8x8 on/off, B-frames 0/1/3 with and without pyramid, refs 1/4,
    # weighted prediction, 1 and 4 slices, odd sizes, long GOP.
    "cabac-main": (".mp4", dict(profile="main")),
    "cabac-high-8x8-b3-pyramid": (".mkv", dict(profile="high", bframes=3, frames=30)),
    "cabac-high-4x4-b1-refs4": (".mp4", dict(profile="high", transform_8x8=False, bframes=1, refs=4)),
    "cabac-high-b2-nopyramid-slices4": (".ts", dict(profile="high", bframes=2, slices=4, size=(176, 144))),
    "cabac-main-b3-weighted-odd": (".mp4", dict(profile="main", bframes=3, weightp=2, refs=4, size=(202, 138))),
    "cabac-high-gop250-b3": (".h264", dict(profile="high", bframes=3, gop=250, frames=40)),
    "cabac-high-lowcrf-fullpel": (".mp4", dict(profile="high", crf=6, subpel=False, frames=12)),
    "cabac-high-b3-temporal": (".mp4", dict(profile="high", bframes=3, direct="temporal", refs=4, frames=30)),
    "cavlc-main-b3-temporal": (".mkv", dict(profile="main", entropy="cavlc", bframes=3, direct="temporal")),
    "cabac-high-b3-spatial-cqm": (".mp4", dict(profile="high", bframes=3, direct="spatial", cqm="jvt")),
    # x264's preset medium as a phone or web encoder uses it: High, CABAC, 3 B-frames, 3 refs, weightp.
    "phone-like-high-b3-refs3": (".mp4", dict(profile="high", bframes=3, refs=3, weightp=2, size=(640, 360),
                                              frames=20, gop=250)),
    "cabac-1080p": (".mp4", dict(profile="high", bframes=2, size=(1920, 1080), frames=5)),
    # Every partition x264 writes (partitions=all: P 8x4/4x8/4x4), with spatial and temporal direct
    # B-frames reading co-located pictures made of them.  FFmpeg exports one vector per 8x8, but a
    # wrong sub-partition vector also shifts the predictions of the partitions after it.
    "cavlc-high-p4x4-refs3": (".mp4", dict(profile="high", entropy="cavlc", partitions="all", refs=3)),
    "cabac-high-p4x4-b3-spatial": (".mkv", dict(profile="high", partitions="all", bframes=3, direct="spatial",
                                                refs=2, size=(176, 144))),
    "cabac-main-p4x4-b3-temporal": (".mp4", dict(profile="main", partitions="all", bframes=3, direct="temporal",
                                                 refs=3)),
}

# Conformance streams (shared/conformance, MANIFEST.tsv there) with what x264 does not write:
# direct_8x8_inference 0 with temporal and spatial direct, and B 8x4/4x8/4x4 partitions.
MV_STREAMS = {
    "jvt-CABA3_SVA_B-temporal-noinference": "fuzzcorpus/h264/CABA3_SVA_B.264",
    "jvt-SL1_SVA_B-cavlc-temporal-noinference": "fuzzcorpus/h264/SL1_SVA_B.264",
    "jvt-CANL4_SVA_B-spatial-noinference": "fuzzcorpus/h264/CANL4_SVA_B.264",
    "jvt-HCAFR2_HHI-spatial-noinference": "fuzzcorpus/h264/HCAFR2_HHI.264",
    "jvt-HCAFR1_HHI-spatial-b-sub8x8": "fuzzcorpus/h264/HCAFR1_HHI.264",
    "jvt-BA3_SVA_C-cavlc-spatial-b-sub8x8": "fuzzcorpus/h264/BA3_SVA_C.264",
}

# Residual oracle clips: one reference, no B-frames, no weighting, no deblocking.
RESIDUAL_MATRIX = {
    "baseline-fullpel": dict(profile="baseline", entropy="cavlc", subpel=False),
    "main-fullpel-slices4": dict(profile="main", entropy="cavlc", subpel=False, slices=4),
    "high-fullpel-8x8-crf12": dict(profile="high", entropy="cavlc", subpel=False, crf=12),
    "high-4x4-odd-crf35": dict(profile="high", entropy="cavlc", subpel=False, transform_8x8=False,
                               crf=35, size=(178, 122)),
    "high-subpel-8x8": dict(profile="high", entropy="cavlc", subpel=True),
    "main-subpel-lowcrf": dict(profile="main", entropy="cavlc", subpel=True, crf=4, frames=12),
    "cabac-main-fullpel": dict(profile="main", entropy="cabac", subpel=False),
    "cabac-high-8x8-subpel": dict(profile="high", entropy="cabac", subpel=True),
    "cabac-high-4x4-odd-slices4": dict(profile="high", entropy="cabac", transform_8x8=False, slices=4,
                                       size=(178, 122)),
    "cabac-high-lowcrf": dict(profile="high", entropy="cabac", crf=4, frames=12),
}
RESIDUAL_FIXED = dict(refs=1, bframes=0, weightp=0, deblock=False, frames=16, size=(160, 96))


@pytest.fixture(scope="module", params=sorted(MV_MATRIX) + sorted(MV_STREAMS))
def mv_clip(request, clip_factory, conformance_stream):
    if request.param in MV_STREAMS:
        return conformance_stream(MV_STREAMS[request.param])
    suffix, settings = MV_MATRIX[request.param]
    return clip_factory(suffix, **settings)


def test_motion_vectors_match_ffmpeg(mv_clip):
    motions = decode_with_motion(mv_clip)
    checked = 0
    with codec.open(mv_clip) as s:
        assert len(motions) == len(s.frames)
        for frame, motion in zip(s.frames, motions):
            assert frame.type == motion.pict_type
            mb = s.macroblocks(frame.index)
            if frame.type == "I":
                assert set(np.unique(mb.mb_type)) <= {MB_INTRA, MB_PCM}
                assert (mb.ref_idx == -1).all() and (mb.mv == 0).all()
                continue
            if frame.type == "P":
                np.testing.assert_array_equal(mb.mb_type, motion.mb_type, err_msg=f"frame {frame.index} mb_type")
            else:  # B_Skip and B_Direct_16x16 are both "direct" here
                np.testing.assert_array_equal(mb.mb_type == MB_DIRECT, motion.mb_direct)
                # FFmpeg's intra includes I_PCM (B pictures of HCAFR2_HHI have some)
                np.testing.assert_array_equal(np.isin(mb.mb_type, [MB_INTRA, MB_PCM]), motion.mb_intra)
            for lst in (0, 1):
                expected, known = expected_mv_grid(motion, lst, s.coded_width, s.coded_height)
                mismatch = known & (mb.mv[lst] != expected).any(axis=-1)
                assert not mismatch.any(), \
                    f"frame {frame.index} list {lst}: {mismatch.sum()} of {known.sum()} vectors differ"
                checked += int(known.sum())
            intra = np.repeat(np.repeat(np.isin(mb.mb_type, [MB_INTRA, MB_PCM]), 4, 0), 4, 1)
            assert (mb.ref_idx[:, intra] == -1).all() and (mb.mv[:, intra] == 0).all()
            assert (mb.ref_idx[:, ~intra] >= 0).any(axis=0).all()  # every inter block uses a list
            unused = mb.ref_idx < 0
            assert (mb.mv[unused] == 0).all()
            if frame.type == "P":
                assert (mb.ref_idx[1] == -1).all()
    assert checked > 0


@pytest.fixture(scope="session")
def cqm_file(tmp_path_factory):
    return write_cqm_file(tmp_path_factory.mktemp("cqm") / "custom.cfg", seed=3)


@pytest.mark.parametrize("name", sorted(RESIDUAL_MATRIX) + ["cabac-custom-cqm-8x8", "cavlc-custom-cqm-4x4"])
def test_inter_residuals_are_exact(name, clip_factory, cqm_file):
    custom = {"cabac-custom-cqm-8x8": dict(profile="high", entropy="cabac", cqm=cqm_file, crf=18),
              "cavlc-custom-cqm-4x4": dict(profile="high", entropy="cavlc", cqm=cqm_file, transform_8x8=False)}
    settings = RESIDUAL_MATRIX.get(name) or custom[name]
    path = clip_factory(".mp4", **{**RESIDUAL_FIXED, **settings})
    compared = 0
    with codec.open(path) as s:
        for frame, oracle in zip(s.frames, inter_residual_oracle(path)):
            if oracle is None:
                continue
            ours = s.residual(frame.index)
            for plane in ("y", "u", "v"):
                expected = getattr(oracle, plane)
                got = getattr(ours, plane)
                assert got.shape == expected.residual.shape
                wrong = expected.valid & (got != expected.residual)
                assert not wrong.any(), f"frame {frame.index} {plane}: {wrong.sum()} of {expected.valid.sum()} differ"
                compared += int(expected.valid.sum())
    # Most samples are comparable (the rest: intra blocks, clipped samples, unexported sub-8x8).
    assert compared > 0.5 * 1.5 * 160 * 96 * (RESIDUAL_FIXED["frames"] - 2)


def test_custom_scaling_matrices_are_read(clip_factory, cqm_file):
    """The weights in force (SPS/PPS lists after the fall-back rules) equal x264's input file."""
    path = clip_factory(".mp4", **{**RESIDUAL_FIXED, "profile": "high", "entropy": "cabac", "cqm": cqm_file,
                                   "crf": 18})
    expected = read_cqm_file(cqm_file)
    with codec.open(path) as s:
        w4, w8 = s.scaling_matrices(0)
    names4 = ["INTRA4X4_LUMA", "INTRA4X4_CHROMAU", "INTRA4X4_CHROMAV", "INTER4X4_LUMA", "INTER4X4_CHROMAU",
              "INTER4X4_CHROMAV"]
    for i, name in enumerate(names4):
        np.testing.assert_array_equal(w4[i], expected[name], err_msg=name)
    np.testing.assert_array_equal(w8[0], expected["INTRA8X8_LUMA"])
    np.testing.assert_array_equal(w8[1], expected["INTER8X8_LUMA"])


@pytest.mark.parametrize("entropy", ["cavlc", "cabac"])
def test_intra_self_consistency(clip_factory, entropy):
    path = clip_factory(".h264", profile="high", entropy=entropy, frames=13, gop=6, crf=20)
    with codec.open(path) as s:
        for frame in s.frames:
            mb = s.macroblocks(frame.index)
            residual = s.residual(frame.index)
            parsed = s._parsed(frame.index)
            coefficients = s.coefficients(frame.index)
            # Blocks of macroblocks without coded luma (and not Intra16x16 with a DC) are zero.
            luma_blocks = np.repeat(np.repeat(mb.cbp & 15, 16, 0), 16, 1)
            assert (residual.y[(luma_blocks == 0) & (np.repeat(np.repeat(mb.mb_type, 16, 0), 16, 1) == 2)] == 0).all()
            no_chroma = np.repeat(np.repeat((mb.cbp >> 4) == 0, 8, 0), 8, 1)
            assert (residual.u[no_chroma] == 0).all() and (residual.v[no_chroma] == 0).all()
            # Each 4x4 luma transform block has as many nonzero coefficients as its coeff_token said
            # (Intra16x16 blocks carry their DC separately; 8x8 blocks interleave four tokens).
            total = parsed.total_coeff()
            pos, coef = coefficients.positions4, coefficients.coeffs4
            luma = pos[:, 0] == 0
            i16 = frame.type == "I"
            for (x, y), c in zip(pos[luma, 1:], coef[luma]):
                nonzero = int((c != 0).sum())
                expected = int(total[y // 4, x // 4])
                if mb.mb_type[y // 16, x // 16] == MB_INTRA and c[0, 0] != 0 and nonzero == expected + 1:
                    continue  # Intra16x16: DC from the separate DC block
                assert nonzero == expected or not i16
            blocks8 = coefficients.positions8
            for (x, y), c in zip(blocks8[:, 1:], coefficients.coeffs8):
                assert int((c != 0).sum()) == int(total[y // 4:y // 4 + 2, x // 4:x // 4 + 2].sum())


def test_coefficients_reproduce_the_residual(clip_factory):
    path = clip_factory(".mp4", profile="high", entropy="cavlc", bframes=3, frames=16)
    with codec.open(path) as s:
        for frame in s.frames:
            c = s.coefficients(frame.index)
            assert c.data.dtype == np.int16 and c.data.flags.c_contiguous
            assert (np.shares_memory(c.coeffs4, c.data) and np.shares_memory(c.positions8, c.data)
                    or len(c.positions8) == 0)
            r = s.residual(frame.index)
            planes = {0: r.y, 1: r.u, 2: r.v}
            # Every block's transform lands inside its plane; zero residual outside all blocks.
            covered = {p: np.zeros(a.shape, bool) for p, a in planes.items()}
            for (p, x, y) in c.positions4:
                covered[p][y:y + 4, x:x + 4] = True
            for (p, x, y) in c.positions8:
                covered[p][y:y + 8, x:x + 8] = True
            for p, a in planes.items():
                assert (a[~covered[p]] == 0).all()


def test_crafted_intra_and_skip_slices(clip_factory):
    from h264_writer import Pps, Slice, Sps
    sps, pps = Sps(), Pps()
    data = sps.nal() + pps.nal() + Slice(sps, pps, 2, idr=True, qp_delta=3).nal() + \
        Slice(sps, pps, 0, frame_num=1, poc_lsb=2).nal()
    with codec.open(data) as s:
        i, p = s.macroblocks(0), s.macroblocks(1)
        assert (i.mb_type == MB_INTRA).all() and (i.qp == 29).all() and (i.cbp == 0).all()
        assert (p.mb_type == MB_SKIP).all() and (p.mv == 0).all() and (p.ref_idx[0] == 0).all()
        assert not s.residual(0).y.any() and not s.residual(1).u.any()


def test_slice_must_end_at_its_trailing_bits(clip_factory):
    from h264_writer import Pps, Slice, Sps
    sps, pps = Sps(), Pps()
    good = Slice(sps, pps, 0, frame_num=1, poc_lsb=2).nal()
    padded = good + b"\x80"  # a byte of "data" after the stop bit: the parse cannot end cleanly
    data = sps.nal() + pps.nal() + Slice(sps, pps, 2, idr=True).nal()
    with codec.open(data + padded + Slice(sps, pps, 0, frame_num=2, poc_lsb=4).nal()) as s:
        ends = r"frame 1: (slice data continues past the last macroblock|.*rbsp_trailing_bits)"
        with pytest.raises(codec.CorruptStream, match=ends) as info:
            s.macroblocks(1)
        assert info.value.decode_index == 1
        assert s.macroblocks(2) is not None
