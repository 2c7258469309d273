"""`python -m vccv_gpu.codec reencode` and `reencode()`: fixed GOP / B-frames, directory layout,
bad files reported while the rest are converted, inputs and existing outputs left alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from vccv_gpu import codec
from vccv_gpu.codec.reencode import main, reencode

SOURCE = {"size": (96, 64), "frames": 40, "gop": 250, "bframes": 3}


def _structure(path: Path) -> tuple[int, int, int, list[int], str]:
    with codec.open(path) as s:
        return s.width, s.height, len(s.frames), s.keyframes, "".join(f.type for f in s.frames)


@pytest.fixture
def source(clip_factory) -> Path:
    src = clip_factory(".mp4", **SOURCE)
    _, _, frames, keys, types = _structure(src)
    assert frames == 40 and keys == [0] and "B" in types  # the premise: long GOP with B-frames
    return src


def test_fixed_gop_no_bframes(source, tmp_path):
    out = reencode(source, tmp_path / "out.mp4")
    assert out == tmp_path / "out.mp4"
    width, height, frames, keys, types = _structure(out)
    assert (width, height, frames) == (96, 64, 40)
    assert keys == [0, 12, 24, 36]
    assert "B" not in types
    with av.open(str(out)) as c:  # video only, same frame rate
        assert len(c.streams) == 1 and c.streams.video[0].average_rate == 25


@pytest.mark.parametrize("suffix", [".mkv", ".h264"])
def test_bframes_and_other_containers(source, tmp_path, suffix):
    out = reencode(source, tmp_path / f"out{suffix}", gop=12, bframes=2, preset="fast")
    width, height, frames, keys, types = _structure(out)
    assert (width, height, frames) == (96, 64, 40) and keys == [0, 12, 24, 36]
    assert "B" in types and "BBB" not in types


def test_odd_size_is_cropped_with_a_warning(tmp_path):
    src = tmp_path / "odd.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(src), "w") as c:  # x264 takes odd sizes in 4:4:4
        stream = c.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 97, 65, "yuv444p"
        for i in range(15):
            rgb = rng.integers(0, 255, (65, 97, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    with pytest.warns(UserWarning, match="cropped to 96x64"):
        out = reencode(src, tmp_path / "even.mp4", gop=5)
    assert _structure(out)[:4] == (96, 64, 15, [0, 5, 10])
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 30


def test_directory_mirrored_and_bad_file_reported(source, tmp_path, capsys):
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(source, root / "a.mp4")
    shutil.copy(source, root / "sub" / "deeper" / "b.mkv")  # an mp4 under another name: content decides
    (root / "sub" / "broken.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
    shutil.copy(source, root / "a.mkv")  # would also become a.mp4: the second one is reported
    (root / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    assert main([str(root), str(out), "--gop", "12"]) == 1
    err = capsys.readouterr().err
    errors = sorted(line for line in err.splitlines() if line.startswith("error: "))
    assert len(errors) == 2, err
    assert errors[0].startswith(f"error: {root / 'a.mp4'}: output {out / 'a.mp4'} is also the output of "), err
    assert errors[1].startswith(f"error: {root / 'sub' / 'broken.mp4'}: "), err
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert made == ["a.mp4", "sub/deeper/b.mp4"]  # no partial file left for the broken one
    for name in made:
        assert _structure(out / name)[2:4] == (40, [0, 12, 24, 36])


def test_never_overwrites_inputs_and_skips_existing(source, tmp_path, capsys):
    src = tmp_path / "clip.mp4"
    shutil.copy(source, src)
    before = src.read_bytes()
    assert main([str(src), str(src)]) == 1  # OUT is the input
    assert "refusing" in capsys.readouterr().err and src.read_bytes() == before
    with pytest.raises(ValueError, match="refusing"):
        reencode(src, src)
    assert main([str(src), str(tmp_path)]) == 1  # OUT dir maps clip.mp4 onto itself
    assert "refusing" in capsys.readouterr().err and src.read_bytes() == before

    dst = tmp_path / "out" / "clip.mp4"
    dst.parent.mkdir()
    dst.write_bytes(b"keep me")
    assert main([str(src), str(dst.parent)]) == 0
    assert "skipped" in capsys.readouterr().err and dst.read_bytes() == b"keep me"
    assert main([str(src), str(dst.parent), "--overwrite"]) == 0
    assert _structure(dst)[2:4] == (40, [0, 12, 24, 36])


def test_nvenc_is_refused_and_help():
    with pytest.raises(NotImplementedError):
        reencode("x.mp4", "y.mp4", encoder="nvenc")
    result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec", "reencode", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--gop" in result.stdout and "audio" in result.stdout
    result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec", "reencode", "a.mp4", "b.mp4",
                             "--encoder", "nvenc"], check=False, capture_output=True, text=True)
    assert result.returncode == 2 and "not implemented" in result.stderr
