"""Valid streams real files contain and a clean encoder output does not: streams entered
mid-GOP or at an open-GOP recovery point, repeated identical IDR pictures, parameter sets
replaced mid-stream, zero CABAC alignment padding and MP4 edit lists. Each is built here from
libx264 output and compared with what FFmpeg presents."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from pathlib import Path

import _h264_testing
import av
import h264_writer
import numpy as np
import pytest
from mv_oracle import decode_with_motion, expected_mv_grid

from tools.clips import render_frames
from vccv_gpu import codec

START = b"\x00\x00\x00\x01"


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream (without start codes)."""
    parts = data.split(b"\x00\x00\x01")
    return [p.rstrip(b"\x00") for p in parts[1:] if p]


def access_units(data: bytes) -> list[bytes]:
    """Annex B access units of a one-slice-per-picture stream: the non-VCL units before a slice
    belong to its access unit."""
    units, pending = [], b""
    for nal in nal_units(data):
        pending += START + nal
        if nal[0] & 0x1F in (1, 5):
            units.append(pending)
            pending = b""
    return units


def ffmpeg_frames(data_or_path: bytes | Path) -> list[tuple[int | None, str]]:
    """(pts, type) of each frame FFmpeg outputs (reordering depth as the standard allows)."""
    source = data_or_path if isinstance(data_or_path, Path) else io.BytesIO(data_or_path)
    with av.open(source, format=None if isinstance(data_or_path, Path) else "h264") as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"strict": "strict"}
        return [(f.pts, "?IPB"[int(f.pict_type)]) for f in container.decode(stream)]


def assert_matches_ffmpeg(data: bytes, tmp_path: Path) -> codec.Stream:
    """Frame count, types and every exported vector equal FFmpeg's; every frame parses."""
    path = tmp_path / "stream.h264"
    path.write_bytes(data)
    motions = decode_with_motion(path, mb_types=False, format="h264", strict=True)
    s = codec.open(data)
    assert "".join(f.type for f in s.frames) == "".join(m.pict_type[0] for m in motions)
    for f, motion in zip(s.frames, motions):
        mb = s.macroblocks(f.index)
        s.residual(f.index)
        for lst in (0, 1):
            expected, known = expected_mv_grid(motion, lst, s.coded_width, s.coded_height)
            assert not (known & (mb.mv[lst] != expected).any(axis=-1)).any(), f"frame {f.index} list {lst}"
    return s


def encode(x264_params: str, frames: int = 24, size: tuple[int, int] = (96, 64), seed: int = 0) -> bytes:
    """A raw libx264 stream of the test pictures with these x264 parameters."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25, options={
            "preset": "medium", "x264-params": "threads=1:mbtree=0:scenecut=0:" + x264_params})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i, rgb in enumerate(render_frames(size, frames, seed)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def closed_gop() -> bytes:
    return encode("keyint=8:min-keyint=8:bframes=2:b-pyramid=none:ref=2")


@pytest.fixture(scope="module")
def open_gop() -> bytes:
    return encode("keyint=8:min-keyint=8:bframes=2:b-pyramid=none:open-gop=1:ref=2")


@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_stream_cut_mid_gop_starts_at_the_next_keyframe(closed_gop, cut, tmp_path):
    aus = access_units(closed_gop)
    header = b"".join(START + n for n in nal_units(aus[0]) if n[0] & 0x1F in (7, 8))
    data = header + b"".join(aus[cut:])
    s = assert_matches_ffmpeg(data, tmp_path)
    assert s.frames[0].type == "I" and s.frames[0].key
    assert len(s.frames) == len(ffmpeg_frames(data)) < len(codec.open(closed_gop).frames)


def test_stream_entered_at_an_open_gop_recovery_point(open_gop, tmp_path):
    full = codec.open(open_gop)
    # The second GOP's I picture is not an IDR: x264 marks it with a recovery point SEI, and
    # the B pictures after it in decoding order are shown before it and reference the last GOP.
    second_i = next(f for f in full.frames[1:] if f.type == "I")
    assert not full.slice_headers(second_i.index)[0]["idr"]
    aus = access_units(open_gop)
    header = b"".join(START + n for n in nal_units(aus[0]) if n[0] & 0x1F in (7, 8))
    data = header + b"".join(aus[second_i.decode_index:])
    s = assert_matches_ffmpeg(data, tmp_path)
    assert s.frames[0].type == "I" and s.frames[0].key
    leading = [f for f in full.frames if f.decode_index > second_i.decode_index and f.index < second_i.index]
    assert leading, "the clip must have leading pictures for this test to mean anything"
    assert len(s.frames) == len(full.frames) - second_i.index


def test_a_stream_of_p_pictures_alone_cannot_be_decoded(closed_gop):
    aus = access_units(closed_gop)
    header = b"".join(START + n for n in nal_units(aus[0]) if n[0] & 0x1F in (7, 8))
    types = [f.type for f in sorted(codec.open(closed_gop).frames, key=lambda f: f.decode_index)]
    p_only = [au for au, kind in zip(aus, types) if kind == "P"][:2]
    with pytest.raises(codec.CorruptStream, match="no IDR picture, I picture or recovery point"):
        codec.open(header + b"".join(p_only))
    assert not ffmpeg_frames(header + b"".join(p_only))  # FFmpeg shows nothing either


def test_repeated_identical_idr_pictures_are_separate_frames(tmp_path):
    intra = encode("keyint=1:bframes=0", frames=1)
    # The same IDR access unit three times: every field 7.4.1.2.4 compares is equal.
    data = intra * 3
    s = assert_matches_ffmpeg(data, tmp_path)
    assert [f.type for f in s.frames] == ["I"] * 3 and all(f.key for f in s.frames)
    for f in s.frames[1:]:
        np.testing.assert_array_equal(s.residual(f.index).y, s.residual(0).y)


def test_parameter_sets_replaced_mid_stream(tmp_path):
    # Two sequences with SPS/PPS id 0 each: CAVLC baseline, then CABAC High with B-frames and
    # 8x8 transforms. Each frame must parse with the parameter sets in force when it was coded.
    first = encode("keyint=12:bframes=0:cabac=0:8x8dct=0", frames=10)
    second = encode("keyint=12:bframes=2:cabac=1:8x8dct=1", frames=10, seed=1)
    s = assert_matches_ffmpeg(first + second, tmp_path)
    assert len(s.frames) == 20
    assert "B" in "".join(f.type for f in s.frames[10:])


def _zero_cabac_alignment(data: bytes) -> tuple[bytes, int]:
    """The stream (one slice per picture) with every slice's cabac_alignment_one_bits set to 0;
    also how many bits changed."""
    native = codec.open(data)._native
    out, zeroed, decode_index = b"", 0, 0
    for nal in nal_units(data):
        if nal[0] & 0x1F in (1, 5):
            rbsp = bytearray(_h264_testing.remove_emulation_prevention(nal[1:]))
            offset = native.slice_headers(decode_index)[0]["slice_data_bit_offset"]
            decode_index += 1
            for bit in range(offset, (offset + 7) // 8 * 8):
                mask = 0x80 >> (bit % 8)
                zeroed += bool(rbsp[bit // 8] & mask)
                rbsp[bit // 8] &= ~mask & 0xFF
            out += h264_writer.nal(nal[0] & 0x1F, bytes(rbsp), nal[0] >> 5)
        else:
            out += START + nal
    return out, zeroed


def test_zero_cabac_alignment_bits_are_accepted():
    clean = encode("keyint=6:bframes=1:cabac=1", frames=8)
    padded, zeroed = _zero_cabac_alignment(clean)
    assert zeroed > 0 and padded != clean
    a, b = codec.open(clean), codec.open(padded)
    assert len(b.frames) == len(a.frames) == len(ffmpeg_frames(padded))
    for f in a.frames:
        np.testing.assert_array_equal(a.residual(f.index).y, b.residual(f.index).y)
        np.testing.assert_array_equal(a.macroblocks(f.index).mv, b.macroblocks(f.index).mv)


def _patch_edit_list(path: Path, skip: int, keep: int) -> None:
    """Rewrites the MP4's one-entry edit list to present `keep` frames starting `skip` frames
    after the media's first one (a cut made without re-encoding, as editors write them)."""
    data = bytearray(path.read_bytes())
    mdhd = data.index(b"mdhd")
    version = data[mdhd + 4]
    timescale = struct.unpack(">I", data[mdhd + 16:mdhd + 20] if version == 0 else data[mdhd + 24:mdhd + 28])[0]
    mvhd = data.index(b"mvhd")
    movie_timescale = struct.unpack(">I", data[mvhd + 16:mvhd + 20])[0]
    elst = data.index(b"elst")
    assert data[elst + 4] == 0 and struct.unpack(">I", data[elst + 8:elst + 12])[0] == 1
    media_time = struct.unpack(">i", data[elst + 16:elst + 20])[0]
    frame = timescale // 25
    struct.pack_into(">Ii", data, elst + 12, keep * movie_timescale // 25, media_time + skip * frame)
    path.write_bytes(bytes(data))


def test_mp4_edit_list_decides_what_is_presented(clip_factory, tmp_path):
    source = clip_factory(".mp4", bframes=2, frames=24, gop=12)
    path = tmp_path / "cut.mp4"
    path.write_bytes(source.read_bytes())
    _patch_edit_list(path, skip=3, keep=15)
    presented = ffmpeg_frames(path)
    assert len(presented) == 15
    with codec.open(path) as s:
        assert [(f.pts, f.type) for f in s.frames] == presented
        assert s.duration == pytest.approx(15 / 25)
        assert s._native.num_pictures == 24  # the pictures left out are kept as references
        for f in s.frames:
            s.residual(f.index)


def _decoded_frames_equal_ffmpeg(path: Path) -> None:
    """The front end's decoding of every listed frame, by its recorded packets and by seeking,
    equals what FFmpeg presents (by timestamp): pictures that are not listed but referenced
    are decoded too."""
    from vccv_gpu.codec.pyav_frames import PyAVDecoder

    with av.open(str(path)) as container:
        presented = {f.pts: f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    for by_spans in (True, False):
        s = codec.open(path)
        assert s.packet_spans is not None  # MP4: one picture per packet
        if not by_spans:
            s.packet_spans = None  # the seeking decoder, as for MKV/TS
        decoded = PyAVDecoder(workers=1).decode(path, s, list(range(len(s.frames))))
        assert len(decoded) == len(s.frames) == len(presented)
        for f in s.frames:
            np.testing.assert_array_equal(decoded[f.index], presented[f.pts], err_msg=f"frame {f.index}")


@pytest.mark.parametrize("skip", [0, 3, 13])
def test_frames_left_out_by_an_edit_list_are_decoded_as_references(clip_factory, tmp_path, skip):
    # skip 3: the IDR picture is left out; skip 0: the last P picture the B pictures before it need.
    path = tmp_path / "cut.mp4"
    path.write_bytes(clip_factory(".mp4", bframes=2, frames=24, gop=12).read_bytes())
    _patch_edit_list(path, skip=skip, keep=9)
    _decoded_frames_equal_ffmpeg(path)
    codec.sample_clip(path, num_segments=4, size=32)


def test_stream_entered_mid_gop_decodes_from_its_first_keyframe(conformance_stream):
    _decoded_frames_equal_ffmpeg(conformance_stream("defects/mp4-init-nonkeyframe-1.mp4"))
