"""`python -m vccv_gpu.codec reencode` and `reencode()`: fixed GOP / B-frames, directory layout,
bad files reported while the rest are converted, inputs and existing outputs left alone."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import av
import numpy as np
import pytest

from vccv_gpu import codec
from vccv_gpu.codec.reencode import ReencodeError, check_gop_structure, main, reencode, resolve_encoder

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


def test_help_and_nvenc_refused_without_pynvvideocodec(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # importing it fails
    with pytest.raises(ValueError, match="nvenc: PyNvVideoCodec is not installed"):
        reencode("x.mp4", "y.mp4", encoder="nvenc")
    assert resolve_encoder("auto") == "libx264"
    result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec", "reencode", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--gop" in result.stdout and "audio" in result.stdout and "NVENC" in result.stdout
    if importlib.util.find_spec("PyNvVideoCodec") is None:
        result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec", "reencode", "a.mp4", "b.mp4",
                                 "--encoder", "nvenc"], check=False, capture_output=True, text=True)
        assert result.returncode == 2 and "PyNvVideoCodec is not installed" in result.stderr


class FakeTranscoder:
    """PyNvVideoCodec's Transcoder as its samples call it, encoding with libx264 as told, or
    (honour_gop=False) with a GOP of its own, as a misconfigured encoder would."""

    calls: list[tuple] = []
    honour_gop = True

    def __init__(self, src: str, dst: str, gpu_id: int, cuda_context: int, cuda_stream: int, **config) -> None:
        FakeTranscoder.calls.append((src, dst, gpu_id, cuda_context, cuda_stream, config))
        self.src, self.dst, self.config = src, dst, config

    def transcode_with_mux(self) -> None:
        from vccv_gpu.codec.reencode import _transcode

        assert Path(self.dst).suffix == ".mp4"  # the muxer picks the container by the suffix
        gop = self.config["gop"] if self.honour_gop else self.config["gop"] + 1
        _transcode(Path(self.src), Path(self.dst), "mp4", gop, self.config["bf"], self.config["cq"], "veryfast")


@pytest.fixture
def fake_nvenc(monkeypatch):
    import torch

    module = types.ModuleType("PyNvVideoCodec")
    module.Transcoder = FakeTranscoder
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(FakeTranscoder, "calls", [])
    monkeypatch.setattr(FakeTranscoder, "honour_gop", True)
    return FakeTranscoder


def test_nvenc_through_the_transcoder(source, tmp_path, fake_nvenc):
    assert resolve_encoder("auto", tmp_path / "a.mp4") == "nvenc"
    assert resolve_encoder("auto", tmp_path / "a.mkv") == "libx264"  # its muxer writes mp4
    with pytest.raises(ValueError, match="mp4"):
        resolve_encoder("nvenc", tmp_path / "a.mkv")
    out = reencode(source, tmp_path / "out.mp4", gop=10, bframes=2, crf=20.4, preset="slow", encoder="auto")
    (src, dst, gpu_id, context, stream, config), = fake_nvenc.calls
    assert (src, gpu_id, context, stream) == (str(source), 0, 0, 0)
    assert Path(dst).parent == tmp_path and Path(dst).name != "out.mp4"  # a temporary name, renamed
    assert config == {"codec": "h264", "gop": 10, "idrperiod": 10, "bf": 2, "preset": "P5",
                      "tuning_info": "high_quality", "rc": "vbr", "cq": 20}
    _, _, frames, keys, types_ = _structure(out)
    assert (frames, keys) == (40, [0, 10, 20, 30]) and max(map(len, types_.replace("I", "P").split("P"))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_nvenc_result_is_checked(source, tmp_path, fake_nvenc):
    fake_nvenc.honour_gop = False
    with pytest.raises(ReencodeError, match="NVENC put keyframes elsewhere than every 12 frames"):
        reencode(source, tmp_path / "out.mp4", encoder="nvenc")
    assert not list(tmp_path.iterdir())
    with pytest.warns(UserWarning, match="re-encoded with libx264 instead"):
        out = reencode(source, tmp_path / "out.mp4", encoder="auto")
    assert _structure(out)[3] == [0, 12, 24, 36]
    with pytest.raises(ReencodeError, match="3 consecutive B-frames, more than 2"):
        check_gop_structure(source, 250, 2)
    with pytest.raises(ReencodeError, match="wrote 40 frames, the source has 39"):
        check_gop_structure(source, 250, 3, frames=39)
    check_gop_structure(source, 250, 3, frames=40)

@pytest.mark.gpu
@pytest.mark.parametrize("bframes", [0, 2])
def test_nvenc_on_a_gpu(clip_factory, tmp_path, bframes):
    """The real Transcoder (NOT YET RUN: no GPU was lent when this was written)."""
    pytest.importorskip("PyNvVideoCodec")
    source = clip_factory(".mp4", size=(320, 192), frames=40, gop=250, bframes=3)  # above NVENC's minimum size
    out = reencode(source, tmp_path / "out.mp4", gop=12, bframes=bframes, encoder="nvenc")
    width, height, frames, keys, types_ = _structure(out)  # reencode checked these too
    assert (width, height, frames, keys) == (320, 192, 40, [0, 12, 24, 36])
    assert ("B" in types_) == (bframes > 0)
