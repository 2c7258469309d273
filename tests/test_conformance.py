"""Every stream of ../shared/conformance (221 streams from other encoders and decoders' test
suites; MANIFEST.tsv says where each comes from) through the parser and FFmpeg.

A stream the parser opens must parse in every frame and agree with FFmpeg on frame count,
frame types and every exported motion vector, and its residuals must be exact in the first
frames where the two residual oracles apply (inter blocks: prediction consistency; intra
blocks: the intra oracle). A stream it refuses must be refused with the
documented error class for that stream's feature (REFUSED), and a damaged one must be a
CorruptStream naming the file (DAMAGED). Anything else (another exception, a crash, a hang)
fails. Streams run in worker processes, each with a time limit (conformance.py).
"""

from __future__ import annotations

import pytest
from conformance import CONFORMANCE as ROOT
from conformance import CORRUPT, OK, REFUSED, StreamReport, default_jobs, manifest, require_conformance, run_streams

TIME_LIMIT = 240  # seconds per stream; the slowest takes about 15 s here

_FIELD = "interlaced field coding"
_MBAFF = "interlaced MBAFF coding"
_422 = "chroma format 4:2:2"
_444 = "chroma format 4:4:4"
_NO_VIDEO = "no video stream"

# Valid streams using what the parser does not handle: UnsupportedStream, with this reason.
REFUSED_STREAMS = {
    # Interlaced: field pictures and MBAFF frames.
    **{f"fuzzcorpus/h264/{n}.264": _FIELD for n in (
        "CABREF3_Sand_D", "CAFI1_SVA_C", "CAPA1_TOSHIBA_B", "CVFI1_SVA_C", "CVFI2_SVA_C", "Freh7_B",
        "HCAFF1_HHI", "freh10", "freh11", "freh4", "freh6")},
    **{f"fuzzcorpus/h264/{n}.264": _MBAFF for n in (
        "CAMA3_Sand_E", "CAMANL3_Sand_E", "CAPAMA3_Sand_F", "FREXT01_JVC_D", "FREXT02_JVC_C", "HCAMFF1_HHI",
        "freh5")},
    # Chroma formats other than 4:2:0 (x264's 4:2:2 and 4:4:4, one also 10-bit).
    **{f"fuzzcorpus/h264/{n}-libx264.264": _422 for n in (
        "320x180_422p_action", "320x180_422p_static", "32x18_422p_action", "32x18_422p_static")},
    **{f"fuzzcorpus/h264/{n}-libx264.264": _444 for n in (
        "320x180_444p_action", "320x180_444p_static", "32x18_444p_action", "32x18_444p_static",
        "64x36_444p10le_static")},
    # Flexible macroblock ordering (Baseline/Extended slice groups).
    "fuzzcorpus/h264/FM1_FT_E.264": "FMO: 2 slice groups",
    "fuzzcorpus/h264/FM2_SVA_B.264": "FMO: 3 slice groups",
    "fuzzcorpus/h264/FM2_SVA_C.264": "FMO: 3 slice groups",
    # SP/SI switching slices (Extended profile).
    "fuzzcorpus/h264/foreman.264": "SP/SI slices",
    "fuzzcorpus/h264/sp2_bt_b.h264": "SP/SI slices",
    # The picture size changes mid-stream (a new SPS at an IDR; in the MP4 a second sample
    # description with a 128x128 SPS after 256x128 pictures).
    "fuzzcorpus/h264/Error_I_P.264": "resolution changes mid-stream from 352x288 to 640x480",
    "defects/extradata-reload-multi-stsd.mp4": "resolution changes mid-stream from 256x128 to 128x128",
    # SVC: a subset SPS and one enhancement-layer slice, no base layer.
    "openh264/sps_subsetsps_bothVUI.264": "SVC/MVC enhancement layers only",
    # Encrypted samples (MPEG Common Encryption).
    "fuzzcorpus/mp4/mozilla/gizmo-frag-2.mp4": "encrypted",
    "fuzzcorpus/mp4/mozilla/short-cenc.mp4": "encrypted",
    # Not H.264: other video codecs, or audio only.
    **{f"fuzzcorpus/mp4/mozilla/{n}.mp4": "video codec is mpeg4, not H.264" for n in (
        "MPEG4", "_1601video", "test_qcif_200_aac_64", "xtrem-sport")},
    **{f"fuzzcorpus/mp4/mozilla/test_av_vp9_mp3_{n}.mp4": "video codec is vp9, not H.264" for n in (
        "128x128", "180x320", "320x240", "32x18")},
    **{f"fuzzcorpus/mp4/{n}.mp4": _NO_VIDEO for n in (
        "mopt/0", "mopt/1", "mopt/2", "mozilla/aac-sample", "mozilla/id5_1", "mozilla/small-shot-mp3",
        "mozilla/test-a-128k-44100Hz-1ch")},
}

# Damaged streams (fuzzing seeds and broken files; FFmpeg fails on them too or conceals the
# damage): CorruptStream naming the file, with this reason.
DAMAGED_STREAMS = {
    "fuzzcorpus/h264/H264_bad_decoding.264": "run_before exceeds zerosLeft",
    "fuzzcorpus/h264/akiyo224x176_1-300_no_deblock.264": "num_ref_idx_l0_active_minus1 = 201 exceeds 15",
    "fuzzcorpus/h264/bars_and_static_152_100.264": "invalid coeff_token code",
    # profile_idc 48 (no such profile) and garbage after the SPS fields.
    "fuzzcorpus/h264/bunny_3frames.264": "SPS: unexpected data before rbsp_trailing_bits",
    "fuzzcorpus/h264/bunny_min.264": "SPS: unexpected data before rbsp_trailing_bits",
    "fuzzcorpus/h264/testcase.264": "SPS: unexpected data before rbsp_trailing_bits",
    "fuzzcorpus/h264/foreman_qcif.h264": "slice_qp_delta = 684 outside [-26, 25]",
    "fuzzcorpus/h264/intraforeman_qcif1-5.264": "intra_chroma_pred_mode = 4 exceeds 3",
    "fuzzcorpus/h264/station.1080p.h264": "intra_chroma_pred_mode = 10 exceeds 3",
    "fuzzcorpus/h264/ww2.deblock.264": "intra_chroma_pred_mode = 19 exceeds 3",
    "fuzzcorpus/h264/x264foreman_qcif1-5.264": "intra_chroma_pred_mode = 4 exceeds 3",
    # An mdhd timescale of 0: FFmpeg presents no frame either.
    "fuzzcorpus/mp4/mozilla/0-timescale.mp4": "presents none of the stream's 6 pictures",
    "fuzzcorpus/mp4/mozilla/bug1079747.mp4": "no 'moov' index",
    # An initialisation segment without media samples.
    "fuzzcorpus/mp4/mozilla/gizmo-frag-cencinit.mp4": "no decodable picture",
}


STREAMS = manifest()  # [] where the folder is absent: test_the_set_is_complete skips, or fails in CI


@pytest.fixture(scope="module")
def reports() -> dict[str, StreamReport]:
    results = run_streams([ROOT / name for name in STREAMS], jobs=default_jobs(), timeout=TIME_LIMIT)
    return {name: results[str(ROOT / name)] for name in STREAMS}


def test_the_set_is_complete():
    require_conformance()
    assert len(STREAMS) == 221 and all((ROOT / name).is_file() for name in STREAMS)
    assert set(REFUSED_STREAMS) <= set(STREAMS) and set(DAMAGED_STREAMS) <= set(STREAMS)


@pytest.mark.parametrize("name", STREAMS)
def test_stream(reports: dict[str, StreamReport], name: str) -> None:
    report = reports[name]
    if name in REFUSED_STREAMS:
        assert report.outcome == REFUSED and REFUSED_STREAMS[name] in report.message, report.message
    elif name in DAMAGED_STREAMS:
        assert report.outcome == CORRUPT and DAMAGED_STREAMS[name] in report.message, report.message
    else:
        assert report.outcome == OK, f"{report.outcome}: {report.message}"
        assert report.parsed_frames == report.frames > 0
        assert report.ffmpeg_frames == report.frames, f"FFmpeg {report.ffmpeg_frames} frames {report.ffmpeg_error}"
        assert report.types == report.ffmpeg_types
        assert not report.vector_mismatches, "\n".join(report.vector_mismatches)
        assert not report.residual_mismatches, "\n".join(report.residual_mismatches)
        assert not report.intra_mismatches, "\n".join(report.intra_mismatches)
        assert report.intra_samples > 0
    if report.outcome != OK:
        assert str(ROOT / name) in report.message or name in report.message  # the error names the file


def test_vectors_and_residuals_were_compared(reports: dict[str, StreamReport]) -> None:
    require_conformance()
    opened = [r for r in reports.values() if r.outcome == OK]
    assert len(opened) >= 150
    assert sum(r.vectors_compared for r in opened) > 10_000_000
    assert sum(r.vectors_compared > 0 for r in opened) >= 100
    # Inter residuals where the prediction oracle applies (no weighted prediction, one PPS).
    assert sum(r.residual_samples > 0 for r in opened) >= 100
    assert sum(r.residual_samples for r in opened) > 10_000_000
    unchecked = [r.name for r in opened if r.residual_samples == 0 and not r.residual_unchecked]
    assert len(unchecked) <= 25, unchecked  # all-intra streams
