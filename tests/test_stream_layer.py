"""The stream layer against FFmpeg (PyAV) on a matrix of generated libx264 clips."""

from __future__ import annotations

import pytest
from oracles import pyav_oracle

from vccv_gpu import codec

# id -> (container suffix, make_clip settings). Covers CAVLC/CABAC, baseline/main/high,
# B-frames 0/3 with pyramid, refs 1/4, 1 and 4 slices, odd sizes, GOP 12 and 250, weighted
# prediction, no deblocking, full-pel, every container the demuxer handles.
MATRIX = {
    "baseline-cavlc-gop12": (".h264", dict(profile="baseline", entropy="cavlc")),
    "baseline-slices4-refs4": (".mp4", dict(profile="baseline", entropy="cavlc", slices=4, refs=4)),
    "main-cavlc-b3": (".mp4", dict(profile="main", entropy="cavlc", bframes=3)),
    "main-cabac-b3-refs4": (".mkv", dict(profile="main", entropy="cabac", bframes=3, refs=4)),
    "high-cabac-b3-slices4": (".mp4", dict(profile="high", bframes=3, slices=4, frames=30)),
    "high-cavlc-8x8off-slices4": (".h264", dict(profile="high", entropy="cavlc", slices=4,
                                                transform_8x8=False, refs=4)),
    "high-odd-330x250": (".ts", dict(profile="high", size=(330, 250), frames=16)),
    "high-odd-b3-330x250": (".mov", dict(profile="high", size=(330, 250), bframes=3, frames=16)),
    "high-gop250-b3": (".mkv", dict(profile="high", bframes=3, gop=250, frames=262, size=(96, 64))),
    "high-weightp-b3": (".mp4", dict(profile="high", bframes=3, weightp=2, refs=4)),
    "high-nodeblock-fullpel": (".mp4", dict(profile="high", deblock=False, subpel=False, bframes=3)),
    "main-gop250-b0": (".h264", dict(profile="main", gop=250, frames=260, size=(96, 64))),
}


def weighted_p_dupes(settings: dict) -> bool:
    return settings.get("profile") != "baseline" and settings.get("weightp", 2) == 2


@pytest.fixture(scope="module", params=sorted(MATRIX))
def clip(request, clip_factory):
    suffix, settings = MATRIX[request.param]
    return clip_factory(suffix, **settings), settings


def test_structure_matches_ffmpeg(clip):
    path, settings = clip
    oracle = pyav_oracle(path)
    with codec.open(path) as s:
        assert (s.width, s.height) == (oracle.width, oracle.height)
        assert s.coded_width % 16 == 0 and s.coded_height % 16 == 0
        assert s.coded_width - s.width < 16 and s.coded_height - s.height < 16
        assert s.profile == oracle.profile.lower()
        assert s.entropy == settings.get("entropy", "cabac")
        assert len(s.frames) == len(oracle.frames) == settings.get("frames", 24)
        assert [f.type for f in s.frames] == [f.type for f in oracle.frames]
        assert [f.key for f in s.frames] == [f.key for f in oracle.frames]
        assert [f.pts for f in s.frames] == [f.pts for f in oracle.frames]
        assert [f.index for f in s.frames] == list(range(len(s.frames)))
        assert sorted(f.decode_index for f in s.frames) == list(range(len(s.frames)))
        assert not s.truncated


def test_keyframes_every_gop(clip):
    path, settings = clip
    gop = settings.get("gop", 12)
    with codec.open(path) as s:
        assert s.keyframes == list(range(0, len(s.frames), gop))


def test_slice_headers_follow_settings(clip):
    path, settings = clip
    with codec.open(path) as s:
        assert s.sequence["max_num_ref_frames"] >= settings.get("refs", 1)
        assert s.sequence["transform_8x8_mode"] == (
            settings.get("profile") == "high" and settings.get("transform_8x8", True))
        for frame in s.frames:
            headers = s.slice_headers(frame.index)
            assert frame.num_slices == len(headers) == settings.get("slices", 1)
            starts = [h["first_mb_in_slice"] for h in headers]
            assert starts[0] == 0 and starts == sorted(set(starts))
            for h in headers:
                assert h["slice_type"] in ("I", "P", "B")
                assert (h["slice_type"] == "B") <= (frame.type == "B")
                assert h["idr"] == frame.key
                assert h["nal_ref_idc"] > 0 or frame.type == "B"
                assert 0 <= h["slice_qp"] <= 51
                assert h["disable_deblocking_filter_idc"] == (0 if settings.get("deblock", True) else 1)
                refs = h["num_ref_idx_active"]
                if h["slice_type"] == "I":
                    assert refs == (0, 0)
                else:
                    # weightp=2 (x264's default) adds weighted duplicates of references
                    # through ref_pic_list_modification, so the list can exceed `refs`.
                    assert 1 <= refs[0] <= 16 and (h["slice_type"] == "B") == (refs[1] > 0)
                    if not weighted_p_dupes(settings):
                        assert refs[0] <= settings.get("refs", 1)
                weighted = (h["slice_type"] == "P" and s.sequence["weighted_pred"]) or (
                    h["slice_type"] == "B" and s.sequence["weighted_bipred_idc"] == 1)
                assert (h["pred_weight_table"] is not None) == weighted
                if weighted:
                    assert len(h["pred_weight_table"]["entries"][0]) == refs[0]


def test_weighted_prediction_flags(clip_factory):
    path = clip_factory(".mp4", **MATRIX["high-weightp-b3"][1])
    with codec.open(path) as s:
        assert s.sequence["weighted_pred"] is True
        assert s.sequence["weighted_bipred_idc"] == 2  # x264's weightb is implicit weighting
        assert any(h["pred_weight_table"] for f in s.frames for h in s.slice_headers(f.index))


def test_poc_types(clip_factory):
    # x264 uses pic_order_cnt_type 2 without B-frames and 0 with them.
    with codec.open(clip_factory(".h264", **MATRIX["baseline-cavlc-gop12"][1])) as s:
        assert s.sequence["pic_order_cnt_type"] == 2
    with codec.open(clip_factory(".mp4", **MATRIX["main-cavlc-b3"][1])) as s:
        assert s.sequence["pic_order_cnt_type"] == 0


def test_bytes_input_equals_file(clip_factory):
    for suffix, settings in (MATRIX["high-cabac-b3-slices4"], MATRIX["baseline-cavlc-gop12"]):
        path = clip_factory(suffix, **settings)
        with codec.open(path) as from_file, codec.open(path.read_bytes()) as from_bytes:
            assert from_bytes.frames == from_file.frames
            assert from_bytes.name == "<bytes>"


def test_timing(clip_factory):
    path = clip_factory(".mp4", **MATRIX["main-cavlc-b3"][1])
    with codec.open(path) as s:
        assert s.fps == pytest.approx(25)
        assert s.duration == pytest.approx(24 / 25)
    with codec.open(clip_factory(".h264", **MATRIX["baseline-cavlc-gop12"][1])) as s:
        assert s.time_base is None and all(f.pts is None for f in s.frames)
        assert s.fps == pytest.approx(25)  # from the SPS's VUI timing


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_demuxing_probes_the_container_without_decoding(clip_factory, suffix):
    """Opening a container for its packets leaves FFmpeg's decoder idle (no pixel format learnt):
    probing used to decode the first frames, most of the cost of opening a short clip. The
    demuxed timing is what a probe that decodes finds."""
    import av

    from vccv_gpu.codec.demux import _open_container

    path = clip_factory(suffix, size=(160, 96), frames=24, gop=6, bframes=2)
    with path.open("rb") as f, _open_container(f) as container:
        probed = container.streams.video[0]
        assert probed.codec_context.name == "h264" and probed.codec_context.pix_fmt is None
        with av.open(str(path)) as decoded_probe:
            reference = decoded_probe.streams.video[0]
            assert reference.codec_context.pix_fmt == "yuv420p"
            assert (probed.time_base, probed.average_rate) == (reference.time_base, reference.average_rate)
            assert probed.codec_context.extradata == reference.codec_context.extradata


def test_mpeg_program_streams_parse_as_their_source(clip_factory, tmp_path):
    """An MPEG program stream (.mpg) begins with a start code, 00 00 01 BA, but is not an Annex B
    byte stream (0xBA is no NAL unit header): it was parsed as one and refused ("forbidden_zero_bit
    is set"). It goes through the container path, where PyAV refuses per-stream probe options for
    it (ValueError: its streams appear only while probing; found by the fuzz campaign), and gives
    the frames and vectors of the transport stream it was remuxed from."""
    import av
    import numpy as np

    from vccv_gpu.codec.demux import is_annexb

    source = clip_factory(".ts", size=(160, 96), frames=24, gop=6, bframes=2)
    program_stream = tmp_path / "clip.mpg"
    with av.open(str(source)) as inp, av.open(str(program_stream), "w", format="mpeg") as out:
        copy = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    assert program_stream.read_bytes()[:4] == b"\0\0\1\xba" and not is_annexb(program_stream.read_bytes()[:64])
    with codec.open(program_stream) as ps, codec.open(source) as ts:
        assert ps.container == "mpeg" and [f.type for f in ps.frames] == [f.type for f in ts.frames]
        for i in range(len(ts.frames)):
            assert np.array_equal(ps.macroblocks(i).mv, ts.macroblocks(i).mv), i


def test_mp4_slice_data_is_read_back_from_the_file(clip_factory, tmp_path):
    """MP4: only headers stay in memory, slice data is read back from the file when parsed,
    with the same results as from bytes; a file changed since is a named error."""
    import shutil

    import numpy as np

    path = clip_factory(".mp4", size=(160, 96), frames=24, gop=6, bframes=2)
    with codec.open(path) as from_file, codec.open(path.read_bytes()) as from_bytes:
        assert from_file._native.rbsp_bytes == 0 and from_bytes._native.rbsp_bytes > 1000
        for i in range(len(from_file.frames)):
            a, b = from_file.residual(i), from_bytes.residual(i)
            assert all(np.array_equal(getattr(a, p), getattr(b, p)) for p in "yuv"), i
            assert np.array_equal(from_file.macroblocks(i).mv, from_bytes.macroblocks(i).mv), i
    with codec.open(clip_factory(".mkv", size=(160, 96), frames=24, gop=6)) as mkv:
        assert mkv._native.rbsp_bytes > 1000  # no file offsets to read from: kept

    copy = tmp_path / "copy.mp4"
    shutil.copy(path, copy)
    with codec.open(copy) as s:
        target = next(f for f in s.frames if f.type == "P" and f.decode_index < 10)
        pos, size = s.packet_spans[target.decode_index]
        data = bytearray(copy.read_bytes())
        data[pos + size - 3] ^= 0xFF  # the end of its last slice
        copy.write_bytes(bytes(data))
        with pytest.raises(codec.CorruptStream, match=r"copy\.mp4.*changed since it was opened"):
            s.residual(target.index)


@pytest.mark.parametrize("entropy", ["cabac", "cavlc"])
def test_motion_only_parse_gives_the_same_macroblocks(clip_factory, entropy):
    import numpy as np

    path = clip_factory(size=(96, 64), frames=14, entropy=entropy, bframes=2 if entropy == "cabac" else 0,
                        profile="high" if entropy == "cabac" else "main")
    full, motion = codec.open(path), codec.open(path)
    for i in range(len(full.frames)):  # full: residual first, then its macroblocks from that parse
        planes = full.residual(i)
        a, b = full.macroblocks(i), motion.macroblocks(i)  # motion: a parse without the residual
        for field in ("mb_type", "qp", "cbp", "mv", "ref_idx", "intra_pred"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=f"frame {i} {field}")
        # The residual after a motion-only parse is parsed again, in full.
        np.testing.assert_array_equal(motion.residual(i).y, planes.y)
    fresh = codec.open(path)  # nothing cached: a parse for macroblocks only has no coefficients to give
    with pytest.raises(RuntimeError, match="macroblocks only"):
        fresh._native.parse_picture(fresh.frames[1].decode_index, coefficients=False).coefficients()


def test_a_picture_the_caller_holds_is_not_parsed_again_after_the_cache_lets_it_go(clip_factory):
    # extract_motion on many cores holds anchor pictures while more than the cache's few newer
    # pictures are parsed; their B pictures (and any caller) must get the held parse back.
    import numpy as np

    path = clip_factory(size=(96, 64), frames=24, entropy="cabac", bframes=0, profile="high")
    with codec.open(path) as s:
        held = s.macroblocks(0)
        for i in range(1, 24):  # more pictures than the cache keeps
            s.macroblocks(i)
        again = s.macroblocks(0)
        assert np.shares_memory(again.mv, held.mv)  # the same parse, not a second one
