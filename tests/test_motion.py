"""codec.extract_motion (whole videos' motion, parsed on a thread pool) and the `codec motion` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vccv_gpu import codec
from vccv_gpu.codec import motion_cli
from vccv_gpu.codec.stream import Stream

FIELDS = ("mb_type", "qp", "cbp", "mv", "ref_idx", "intra_pred")


@pytest.fixture(scope="module")
def b_clip(clip_factory) -> Path:
    # Temporal direct: B pictures read their co-located picture's motion, parsed by another thread.
    return clip_factory(".mp4", bframes=3, direct="temporal", refs=3, frames=30, gop=10, size=(176, 144))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_parsing_equals_sequential(b_clip, threads):
    with codec.open(b_clip) as s:
        expected = [(s.macroblocks(f.index), s.residual(f.index), s.coefficients(f.index)) for f in s.frames]
        frames = s.frames
    got = list(codec.extract_motion(b_clip, residual=True, coefficients=True, threads=threads))
    assert [m.index for m in got] == list(range(len(frames)))
    for m, f, (mb, res, coeffs) in zip(got, frames, expected):
        assert (m.type, m.pts, m.key) == (f.type, f.pts, f.key)
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(m.macroblocks, name), getattr(mb, name), err_msg=f"{m.index} {name}")
        for plane in ("y", "u", "v"):
            np.testing.assert_array_equal(getattr(m.residual, plane), getattr(res, plane))
        np.testing.assert_array_equal(m.coefficients.data, coeffs.data)


def test_arrays_handed_out_survive_the_recycling_of_picture_memory(clip_factory):
    # At CIF the planes, coefficient buffers and the parser's reserved room are over the 64 KiB
    # from which released buffers are recycled (recycled_memory.h): pictures parsed after frame
    # 0's arrays were handed out must not reuse them while they live, and must reuse the memory
    # of the frames dropped meanwhile without mixing their contents up.
    clip = clip_factory(".mp4", bframes=2, frames=12, gop=6, size=(352, 288))
    with codec.open(clip) as s:
        expected = [(s.residual(i).y.copy(), s.coefficients(i).data.copy(), s.macroblocks(i).mv.copy())
                    for i in range(len(s.frames))]
    held = None
    for m in codec.extract_motion(clip, residual=True, coefficients=True, threads=2):
        if held is None:
            held = m  # kept while every later frame is parsed and dropped
        y, data, mv = expected[m.index]
        np.testing.assert_array_equal(m.residual.y, y)
        np.testing.assert_array_equal(m.coefficients.data, data)
        np.testing.assert_array_equal(m.macroblocks.mv, mv)
    np.testing.assert_array_equal(held.residual.y, expected[0][0])
    np.testing.assert_array_equal(held.coefficients.data, expected[0][1])
    np.testing.assert_array_equal(held.macroblocks.mv, expected[0][2])


def test_selected_frames_in_the_order_given_and_nothing_else(b_clip):
    got = list(codec.extract_motion(b_clip, frames=[7, 2, 2, 29], threads=2))
    assert [m.index for m in got] == [7, 2, 2, 29]
    assert all(m.residual is None and m.coefficients is None for m in got)
    with pytest.raises(IndexError, match="frame 30"):
        list(codec.extract_motion(b_clip, frames=[30]))


def test_frames_are_parsed_a_bounded_window_ahead(b_clip, monkeypatch):
    asked: list[int] = []
    original = Stream.macroblocks

    def counting(self: Stream, index: int) -> codec.Macroblocks:
        asked.append(index)
        return original(self, index)

    monkeypatch.setattr(Stream, "macroblocks", counting)
    frames = codec.extract_motion(b_clip, threads=2)
    next(frames)
    assert 1 <= len(asked) <= 4 * 2 + 1  # the pictures held in flight, not the 30 frames
    frames.close()  # stops the pool: what was not started is cancelled
    assert len(asked) <= 4 * 2 + 1


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.h264"
    bad.write_bytes(b"\x00\x00\x01\x09\xf0" * 10)
    with pytest.raises(codec.CorruptStream, match="bad.h264"):
        list(codec.extract_motion(bad))


def _read_back(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    index = json.loads((folder / "index.json").read_text())
    shards = [np.load(folder / s["file"]) for s in index["shards"]]
    return index, {k: np.concatenate([s[k] for s in shards]) for k in shards[0].files}


def test_cli_writes_shards_numpy_reads_back(b_clip, clip_factory, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b_clip.read_bytes())
    (videos / "b.h264").write_bytes(clip_factory(".h264", frames=8).read_bytes())
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    assert motion_cli.main([str(videos), "--out", str(out), "--shard-frames", "7", "--threads", "2"]) == 1
    assert f"error: {videos / 'broken.mp4'}: " in capsys.readouterr().err
    folder = motion_cli.output_dir(out, videos / "a.mp4")
    index, arrays = _read_back(folder)
    with codec.open(videos / "a.mp4") as s:
        assert index["frames"] == len(s.frames) == 30 and [sh["count"] for sh in index["shards"]] == [7, 7, 7, 7, 2]
        assert arrays["type"].tobytes().decode() == "".join(f.type for f in s.frames)
        assert list(arrays["pts"]) == [f.pts for f in s.frames]
        for f in s.frames:
            mb = s.macroblocks(f.index)
            for name in ("mb_type", "qp", "mv", "ref_idx"):
                np.testing.assert_array_equal(arrays[name][f.index], getattr(mb, name))
    assert "y" not in arrays
    assert (motion_cli.output_dir(out, videos / "b.h264") / "index.json").is_file()
    assert not motion_cli.output_dir(out, videos / "broken.mp4").exists()


def test_cli_rerun_skips_finished_videos_and_adds_residuals(b_clip, tmp_path):
    out = tmp_path / "out"
    assert motion_cli.main([str(b_clip), "--out", str(out)]) == 0
    folder = motion_cli.output_dir(out, b_clip)
    written = (folder / "index.json").stat().st_mtime_ns
    assert motion_cli.main([str(b_clip), "--out", str(out)]) == 0
    assert (folder / "index.json").stat().st_mtime_ns == written  # skipped
    assert motion_cli.main([str(b_clip), "--out", str(out), "--residual"]) == 0
    index, arrays = _read_back(folder)
    assert index["residual"]
    with codec.open(b_clip) as s:
        np.testing.assert_array_equal(arrays["y"][5], s.residual(5).y)
        np.testing.assert_array_equal(arrays["v"][5], s.residual(5).v)


def test_cli_help(cli_help):
    assert "--residual" in cli_help(motion_cli.main, "python -m vccv_gpu.codec motion")
