"""Bad input: every case gets UnsupportedStream or CorruptStream with a clear message, or (for
truncated files) the complete frames with `truncated` set. Never a crash or a hang."""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from tools.clips import make_clip, make_foreign_clip
from vccv_gpu import codec


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    out = {suffix: make_clip(root / f"full{suffix}", frames=48, bframes=3, slices=2)
           for suffix in (".mp4", ".mkv", ".ts", ".h264")}
    out["faststart.mp4"] = remux(out[".mp4"], root / "faststart.mp4", {"movflags": "faststart"})
    return out


def remux(src: Path, dst: Path, options: dict[str, str]) -> Path:
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    return dst


def open_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return codec.open(path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(codec.CorruptStream, match="empty.mp4: the file is empty"):
        codec.open(tmp_path / "empty.mp4")
    with pytest.raises(codec.CorruptStream, match="empty"):
        codec.open(b"")


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "noise.mp4").write_bytes(rng.bytes(20000))
    with pytest.raises(codec.CorruptStream, match="noise.mp4: not a video container"):
        codec.open(tmp_path / "noise.mp4")
    # Noise behind an Annex B start code: parsed as NAL units, rejected as corrupt.
    for seed in range(20):
        data = b"\0\0\0\1" + np.random.default_rng(seed).bytes(5000)
        with pytest.raises(codec.CorruptStream):
            codec.open(data)


@pytest.mark.parametrize("encoder, suffix, name", [("mpeg4", ".mp4", "mpeg4"), ("libvpx-vp9", ".webm", "vp9")])
def test_other_codecs(tmp_path, encoder, suffix, name):
    path = make_foreign_clip(tmp_path / f"other{suffix}", encoder)
    with pytest.raises(codec.UnsupportedStream, match=f"video codec is {name}, not H.264") as raised:
        codec.open(path)
    assert str(raised.value).endswith("; re-encode it to H.264 with: python -m vccv_gpu.codec reencode IN OUT")


def test_audio_only(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(codec.UnsupportedStream, match="no video stream"):
        codec.open(path)


def frames_by_decode_order(s: codec.Stream) -> list[tuple[str, bool]]:
    return [(f.type, f.key) for f in sorted(s.frames, key=lambda f: f.decode_index)]


@pytest.mark.parametrize("kind", [".mkv", ".ts", "faststart.mp4"])
@pytest.mark.parametrize("fraction", [0.35, 0.8])
def test_truncated_container_lists_complete_frames(clips, tmp_path, kind, fraction):
    data = clips[kind].read_bytes()
    cut = tmp_path / f"cut{kind}"
    # Inside a 188-byte TS packet: at a packet boundary a cut is invisible to the framing
    # and shows only in the slice data, which the macroblock layer checks.
    cut.write_bytes(data[:int(len(data) * fraction) // 188 * 188 + 100])
    with codec.open(clips[kind]) as full:
        whole = frames_by_decode_order(full)
    with pytest.warns(codec.TruncatedStreamWarning, match="truncated"):  # a UserWarning, as before
        s = codec.open(cut)
    assert s.truncated
    listed = frames_by_decode_order(s)
    assert 0 < len(listed) < len(whole) and listed == whole[:len(listed)]
    # What FFmpeg decodes from the cut file is never more than what is listed.
    assert decoded_until_error(cut) <= len(listed) + 1


def decoded_until_error(path: Path) -> int:
    count = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                count += 1
        except av.error.FFmpegError:
            pass
    return count


def test_truncated_mp4_without_index(clips, tmp_path):
    data = clips[".mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(codec.CorruptStream, match="cut.mp4: the MP4 file is truncated.*'moov' index is missing"):
        codec.open(cut)


def test_truncated_raw_stream_inside_a_header(clips, tmp_path):
    """Cut a raw stream a few bytes into a slice NAL unit: that picture is dropped."""
    data = clips[".h264"].read_bytes()
    starts = [i for i in range(len(data) - 4) if data[i:i + 4] == b"\0\0\0\1"]
    with codec.open(clips[".h264"]) as full:
        whole = frames_by_decode_order(full)
    for cut_at in (starts[-7] + 6, starts[len(starts) // 2] + 6):
        with pytest.warns(UserWarning, match="truncated"):
            s = codec.open(data[:cut_at])
        listed = frames_by_decode_order(s)
        assert s.truncated and listed == whole[:len(listed)] and len(listed) < len(whole)


def test_mutated_streams_never_crash(clips):
    """A small smoke fuzz (the full fuzzing campaign is a later issue): flipped bytes, cut and
    spliced streams either parse or raise a StreamError."""
    rng = np.random.default_rng(7)
    sources = [clips[".h264"].read_bytes(), clips[".mp4"].read_bytes(), clips[".ts"].read_bytes()]
    outcomes = {"ok": 0, "error": 0}
    for trial in range(150):
        data = bytearray(sources[trial % len(sources)])
        for _ in range(rng.integers(1, 20)):
            data[rng.integers(0, len(data))] = rng.integers(0, 256)
        if trial % 5 == 0:
            a, b = sorted(rng.integers(0, len(data), 2))
            data = data[:a] + data[b:]
        try:
            open_quietly(bytes(data))
            outcomes["ok"] += 1
        except codec.StreamError:
            outcomes["error"] += 1
    assert outcomes["ok"] + outcomes["error"] == 150
