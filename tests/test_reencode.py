"""`python -m vccv_gpu.codec reencode` and `reencode()`: fixed GOP / B-frames, directory layout,
bad files reported while the rest are converted, inputs and existing outputs left alone."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from pynvvideocodec_standin import FakeEncoder, FakeNvc

from vccv_gpu import codec
from vccv_gpu.codec.reencode import (
    ReencodeError,
    check_gop_structure,
    main,
    nvenc_config,
    reencode,
    resolve_encoder,
)

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


def _odd_clip(src: Path) -> Path:
    """97x65 4:4:4 at 30 fps, 15 frames (x264 takes odd sizes in 4:4:4)."""
    rng = np.random.default_rng(0)
    with av.open(str(src), "w") as c:
        stream = c.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 97, 65, "yuv444p"
        for i in range(15):
            rgb = rng.integers(0, 255, (65, 97, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    return src


def test_odd_size_is_cropped_with_a_warning(tmp_path):
    src = _odd_clip(tmp_path / "odd.mkv")
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


def test_unreadable_files_reported_in_ffmpeg_words(tmp_path, capsys):
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).bytes(3000))
    missing = tmp_path / "missing.mp4"
    assert main([str(noise), str(missing), str(tmp_path / "out")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {noise}: Invalid data found when processing input",
                      f"error: {missing}: No such file or directory"]  # not "[Errno 1094995529] ..."
    with pytest.raises(ReencodeError, match=r"noise.mp4: Invalid data found when processing input$"):
        reencode(noise, tmp_path / "out.mp4")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])  # a frame count in the container; only a duration
def test_progress_over_frames_on_a_terminal(clip_factory, tmp_path, capsys, monkeypatch, suffix):
    src = clip_factory(suffix, **SOURCE)
    assert main([str(src), str(tmp_path / "quiet.mp4")]) == 0  # stderr is no terminal here: no bar
    assert "frame" not in capsys.readouterr().err
    monkeypatch.setattr("vccv_gpu.codec.reencode.stderr_is_terminal", lambda: True)
    assert main([str(src), str(tmp_path / "shown.mp4")]) == 0
    err = capsys.readouterr().err
    assert f"{src.name}:   0%|" in err and "| 0/40 [00:00<?, ?frame/s]" in err, err  # total known: ETA shown
    assert err.rstrip().endswith("1 re-encoded, 0 skipped (existing), 0 failed")


def test_other_codec_hint_is_what_converts_it(tmp_path):
    from tools.clips import make_foreign_clip

    other = make_foreign_clip(tmp_path / "other.mp4", "mpeg4", size=(96, 64), frames=8)
    with pytest.raises(codec.UnsupportedStream, match="python -m vccv_gpu.codec reencode IN OUT"):
        codec.open(other)
    assert main([str(other), str(tmp_path / "h264.mp4")]) == 0  # what the hint says to run
    assert _structure(tmp_path / "h264.mp4")[:4] == (96, 64, 8, [0])


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


def test_pynvvideocodec_without_driver_falls_back(source, tmp_path, monkeypatch, capsys):
    """Installed but without a driver, `import PyNvVideoCodec` raises RuntimeError (its
    __init__): auto uses libx264, nvenc is refused with the reason."""
    package = tmp_path / "site" / "PyNvVideoCodec"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise RuntimeError("Failed to load NVENC library: libnvidia-encode.so.1")\n')
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "PyNvVideoCodec", raising=False)
    assert resolve_encoder("auto") == "libx264"
    with pytest.raises(ValueError, match="PyNvVideoCodec cannot be loaded .RuntimeError: Failed to load NVENC"):
        reencode(source, tmp_path / "a.mp4", encoder="nvenc")
    assert main([str(source), str(tmp_path / "b.mp4")]) == 0
    assert "1 re-encoded" in capsys.readouterr().err


class FakeStream:
    """torch.cuda.Stream off CUDA (the handle the binding gets)."""

    def __init__(self, device: int = 0) -> None:
        self.cuda_stream = 0

    def synchronize(self) -> None:
        pass


@pytest.fixture
def fake_nvenc(monkeypatch) -> FakeNvc:
    import torch

    from vccv_gpu.codec import nvcodec

    fake = FakeNvc()
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(nvcodec, "torch_context", lambda gpu_id: 0)
    monkeypatch.setattr(nvcodec, "keep_current_context", contextlib.nullcontext)
    monkeypatch.setattr(FakeEncoder, "honour_gop", True)
    return fake


def _with_audio(src: Path, dst: Path) -> Path:
    """`src`'s video and a second of silent AAC."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        audio = out.add_stream("aac", rate=48000)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
        for i in range(48):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1024
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return dst


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".h264"])
def test_nvenc_reencodes_video_only_clips(source, tmp_path, fake_nvenc, suffix):
    """The project's clips have no audio, which the binding's Transcoder refuses, and its
    settings must be strings: NVDEC -> NVENC -> PyAV's muxer, into every output format."""
    with pytest.raises(FakeNvc.PyNvVCException, match="No audio stream found"):
        fake_nvenc.Transcoder(str(source), str(tmp_path / "t.mp4"), 0, 0, 0, **nvenc_config(12, 0, 18, "fast"))
    with pytest.raises(TypeError, match="incompatible function arguments"):
        fake_nvenc.Transcoder(str(source), str(tmp_path / "t.mp4"), 0, 0, 0, bf=2)
    assert resolve_encoder("auto") == "nvenc"
    out = reencode(source, tmp_path / f"out{suffix}", gop=10, bframes=2, crf=20.4, preset="slow", encoder="auto")
    (width, height, fmt, cpu_input, config), = fake_nvenc.encoders
    assert (width, height, fmt, cpu_input) == (96, 64, "NV12", False)
    assert config == {"gpu_id": "0", "codec": "h264", "gop": "10", "idrperiod": "10", "bf": "2", "preset": "P5",
                      "tuning_info": "high_quality", "rc": "vbr", "cq": "20"}
    _, _, frames, keys, types_ = _structure(out)
    assert (frames, keys) == (40, [0, 10, 20, 30]) and max(map(len, types_.replace("I", "P").split("P"))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]  # the temporary file renamed
    if suffix != ".h264":
        with av.open(str(out)) as c:  # constant-rate timestamps at the source's rate, as libx264's
            assert len(c.streams) == 1 and c.streams.video[0].average_rate == 25


def test_nvenc_drops_audio(source, tmp_path, fake_nvenc):
    src = _with_audio(source, tmp_path / "with_audio.mp4")
    out = reencode(src, tmp_path / "out.mp4", gop=12, encoder="nvenc")
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]
    assert _structure(out)[2:4] == (40, [0, 12, 24, 36])


def test_nvenc_result_is_checked(source, tmp_path, fake_nvenc):
    FakeEncoder.honour_gop = False
    with pytest.raises(ReencodeError, match="NVENC put keyframes elsewhere than every 12 frames"):
        reencode(source, tmp_path / "out.mp4", encoder="nvenc")
    assert not list(tmp_path.iterdir())  # no partial file left
    with pytest.warns(UserWarning, match="re-encoded with libx264 instead"):
        out = reencode(source, tmp_path / "out.mp4", encoder="auto")
    assert _structure(out)[3] == [0, 12, 24, 36]
    # a source NVENC cannot take: an error, or libx264 under auto
    odd = _odd_clip(tmp_path / "odd.mkv")
    with pytest.raises(ReencodeError, match="NVENC takes 8-bit 4:2:0 of even size, not yuv444p 97x65"):
        reencode(odd, tmp_path / "odd.mp4", encoder="nvenc")
    with pytest.warns(UserWarning) as caught:
        assert _structure(reencode(odd, tmp_path / "odd.mp4", gop=5, encoder="auto"))[:4] == (96, 64, 15, [0, 5, 10])
    assert ["re-encoded with libx264 instead" in str(w.message) for w in caught] == [True, False]  # then cropped
    with pytest.raises(ReencodeError, match="3 consecutive B-frames, more than 2"):
        check_gop_structure(source, 250, 2)
    with pytest.raises(ReencodeError, match="wrote 40 frames, the source has 39"):
        check_gop_structure(source, 250, 3, frames=39)
    check_gop_structure(source, 250, 3, frames=40)


def test_gpu_without_nvenc_uses_libx264(source, tmp_path, fake_nvenc, monkeypatch):
    """GPUs without an NVENC unit (H100, H200, A100) refuse the encoder session, as PyNvVideoCodec
    words it on an H100: `nvenc` fails naming why, `auto` falls back to libx264 once with a warning
    and from then on picks libx264 itself."""
    import torch

    from vccv_gpu.codec import reencode as module

    refusal = ("PyNvEncoderCaps : \nError code : 2\nError Type : m_nvenc.nvEncOpenEncodeSessionEx("
               "&encodeSessionExParams, &hEncoder) returned error 2")

    def no_encoder(*args, **kwargs):
        raise FakeNvc.PyNvVCException(refusal)

    monkeypatch.setattr(FakeNvc, "CreateEncoder", no_encoder)
    monkeypatch.setattr(module, "_NO_NVENC", {})
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda gpu_id: "NVIDIA H100 80GB HBM3")
    with pytest.raises(ReencodeError, match="the NVIDIA H100 80GB HBM3 has no NVENC encoder"):
        reencode(source, tmp_path / "a.mp4", gop=12, encoder="nvenc")
    assert resolve_encoder("auto") == "libx264"
    with pytest.raises(ValueError, match="--encoder nvenc: the NVIDIA H100 80GB HBM3 has no NVENC"):
        reencode(source, tmp_path / "a.mp4", gop=12, encoder="nvenc")
    monkeypatch.setattr(module, "_NO_NVENC", {})
    with pytest.warns(UserWarning, match="has no NVENC encoder .*; re-encoded with libx264 instead"):
        reencode(source, tmp_path / "b.mp4", gop=12, encoder="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reencode(source, tmp_path / "c.mp4", gop=12, encoder="auto")  # known now: libx264 without trying
    assert _structure(tmp_path / "c.mp4")[:4] == (96, 64, 40, [0, 12, 24, 36])


def _nvenc_refusal(source: Path, out: Path) -> str | None:
    """Why this GPU has no NVENC (the real binding's refusal), or None where it re-encodes."""
    try:
        reencode(source, out, gop=12, encoder="nvenc")
    except (ReencodeError, ValueError) as e:  # ValueError: already known in this process
        if "has no NVENC encoder" not in str(e):
            raise
        return str(e)
    return None


@pytest.mark.gpu
@pytest.mark.parametrize("bframes", [0, 2])
def test_nvenc_on_a_gpu(clip_factory, tmp_path, bframes):
    """The real binding, on a clip without audio and one with (not yet run: the GPUs lent so far,
    H100s, have no NVENC; see the next test)."""
    pytest.importorskip("PyNvVideoCodec")
    source = clip_factory(".mp4", size=(320, 192), frames=40, gop=250, bframes=3)  # above NVENC's minimum size
    why = _nvenc_refusal(source, tmp_path / "probe.mp4")
    if why is not None:
        pytest.skip(why)
    for src in (source, _with_audio(source, tmp_path / "with_audio.mp4")):
        out = reencode(src, tmp_path / "out.mp4", gop=12, bframes=bframes, encoder="nvenc")
        width, height, frames, keys, types_ = _structure(out)  # reencode checked these too
        assert (width, height, frames, keys) == (320, 192, 40, [0, 12, 24, 36])
        assert ("B" in types_) == (bframes > 0)
        with av.open(str(out)) as c:
            assert [s.type for s in c.streams] == ["video"] and c.streams.video[0].average_rate == 25


@pytest.mark.gpu
def test_gpu_without_nvenc_keeps_torch_working(clip_factory, tmp_path, monkeypatch):
    """On a GPU without NVENC (the H100: NV_ENC_ERR_UNSUPPORTED_DEVICE) the refused session must
    not leave the binding's CUDA context current: it did, and every later CUDA call of the process
    failed (the next encoder: "cudastream input argument does not correspond to cudacontext")."""
    pytest.importorskip("PyNvVideoCodec")
    import torch

    from vccv_gpu.codec import nvcodec
    from vccv_gpu.codec import reencode as module

    monkeypatch.setattr(module, "_NO_NVENC", {})  # the session is really refused here
    source = clip_factory(".mp4", size=(320, 192), frames=40, gop=250, bframes=3)
    torch.zeros(1, device="cuda")  # torch's context current in this thread
    why = _nvenc_refusal(source, tmp_path / "probe.mp4")
    if why is None:
        pytest.skip("this GPU has NVENC (test_nvenc_on_a_gpu re-encodes with it)")
    assert nvcodec._current() == nvcodec.torch_context(torch.cuda.current_device())
    x = torch.arange(1000, device="cuda")
    assert int((x * 2).sum()) == 999000
    with pytest.raises(ValueError, match="has no NVENC encoder"):
        reencode(source, tmp_path / "again.mp4", encoder="nvenc")
    assert resolve_encoder("auto") == "libx264"
    out = reencode(source, tmp_path / "out.mp4", gop=12, bframes=2, encoder="auto")
    assert _structure(out)[:4] == (320, 192, 40, [0, 12, 24, 36])
