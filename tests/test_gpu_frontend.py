"""The GPU front end (NVDEC frames: codec/nvdec.py, nv12.py; residual kernels: codec/residuals.py)
against the CPU path.

On the CPU: the device pipeline run on CPU tensors (residual kernels: the reference and the
Triton kernels under TRITON_INTERPRET=1), the NV12 -> RGB conversion against PyAV's rgb24 and
the NVDEC orchestration (decoder pool, parallel runs, raw Annex B, fallbacks) against the
PyNvVideoCodec stand-in of tests/pynvvideocodec_standin.py, which decodes with PyAV. Against the
CPU path's ClipSample: frame indices, policy and residual sources equal; frames equal (the
conversion is libswscale's arithmetic; on a machine that is not x86-64 swscale may use other
code: then max abs diff <= 3, mean <= 1.5, the float conversion's measured distance); residual
YUV planes and RGB residuals bit-exact (the resampling is the same float32 operations on every
device, resample.py).

On a GPU (marked `gpu`): the same through NVDEC, tensors on CUDA, no large device-to-host copy.
They generate their clips when PyAV is importable (benchmarks/gpu_check.sh carries its wheel),
else read `.bench_clips/*.h264`; comparisons with the CPU path need PyAV.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from pynvvideocodec_standin import FakeDecoder, FakeFrame, FakeNvc, FakeSimpleDecoder

from vccv_gpu import codec
from vccv_gpu.codec import decoders, residuals
from vccv_gpu.codec import nvdec as nvdec_module
from vccv_gpu.codec.colour import (
    KR_KB,
    rgb_matrix,
    swscale_coefficients,
    swscale_rgb,
    upsample_chroma,
    yuv_to_rgb,
)
from vccv_gpu.codec.nv12 import Nv12Frames, nv12_planes
from vccv_gpu.codec.resample import frame_from_planes, frame_from_rgb
from vccv_gpu.codec.sample import default_backends

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the Triton kernels are first used

X86 = platform.machine().lower() in ("x86_64", "amd64")


def nv12_to_rgb(nv12: torch.Tensor, mc: int, full: bool) -> torch.Tensor:
    """The whole frame through colour.swscale_rgb (chroma repeated 2x2)."""
    y, u, v = nv12_planes(nv12)
    h, w = y.shape
    return swscale_rgb(y, upsample_chroma(u, h, w), upsample_chroma(v, h, w), swscale_coefficients(mc, full))
SIZE = (152, 88)  # not a multiple of 16: the SPS crops


def assert_frames_match(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    got, want = got.cpu(), want.cpu()
    assert got.dtype == want.dtype == torch.uint8 and got.shape == want.shape, what
    if X86:
        diff = (got.int() - want.int()).abs()
        assert torch.equal(got, want), f"{what}: {int((diff > 0).sum())} values differ, max {int(diff.max())}"
    else:
        diff = (got.float() - want.float()).abs()
        assert float(diff.max()) <= 3 and float(diff.mean()) <= 1.5, what


def assert_residuals_match(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.dtype == want.dtype == torch.float16 and got.shape == want.shape, what
    # the same gathers and float32 operations on every device (resample.py): the same bits
    diff = (got.cpu().float() - want.cpu().float()).abs()
    assert torch.equal(got.cpu(), want.cpu()), f"{what}: {int((diff > 0).sum())} values differ, max {float(diff.max())}"


def assert_same_plan(got: codec.ClipSample, want: codec.ClipSample) -> None:
    assert (got.policy, got.frame_indices, got.residual_indices, got.residual_frames) == \
        (want.policy, want.frame_indices, want.residual_indices, want.residual_frames)
    assert (got.fps, got.duration) == (want.fps, want.duration)


def pyav_nv12_decoder(source, stream, indices, convert, device, pool) -> dict[int, torch.Tensor]:
    """An NV12 decoder (nv12.py) that hands out PyAV's NV12 frames."""
    import io

    import av

    src = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    wanted = set(indices)
    with av.open(src) as container:
        frames = {n: f.to_ndarray(format="nv12") for n, f in enumerate(container.decode(video=0)) if n in wanted}
    return {i: convert(torch.from_numpy(frames[i]).to(device)) for i in sorted(wanted)}


decoders.register_decoder("pyav-nv12", Nv12Frames(pyav_nv12_decoder))


# ---------------------------------------------------------------------------------------------
# NV12 -> RGB


@pytest.mark.parametrize("colorspace,color_range,size", [
    (2, 1, (160, 96)),   # unspecified matrix: BT.601, limited range
    (1, 1, (160, 96)),   # BT.709 limited
    (1, 2, (160, 96)),   # BT.709 full
    (6, 2, (160, 96)),   # SMPTE 170M full
    (7, 1, (160, 96)),   # SMPTE 240M
    (9, 1, (160, 96)),   # BT.2020
    (4, 1, (160, 96)),   # FCC
    (1, 1, (74, 42)),    # width not a multiple of 8 or 16
])
def test_nv12_planes_convert_to_pyavs_rgb24(tmp_path: Path, colorspace: int, color_range: int, size) -> None:
    import av

    from tools.clips import make_tagged_clip

    path = make_tagged_clip(tmp_path / "tagged.mp4", colorspace, color_range, size, frames=3)
    with codec.open(path) as s:
        mc, full = s.sequence["matrix_coefficients"], bool(s.sequence["full_range"])
    assert (mc, full) == (colorspace, color_range == 2)
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            want = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
            nv12 = torch.from_numpy(frame.to_ndarray(format="nv12"))
            got = nv12_to_rgb(nv12, mc, full)
            assert_frames_match(got, want, f"matrix {mc}, full range {full}")
            # the GPU path's small frames: the same as resizing PyAV's rgb24
            small = frame_from_planes(*nv12_planes(nv12), mc, full, 24, keep_aspect=True)
            expected = frame_from_rgb(want.permute(1, 2, 0).contiguous(), 24, keep_aspect=True)
            assert_frames_match(small, expected, f"small, matrix {mc}, full range {full}")
    # the other range is visibly different: the conversion does depend on it
    other = nv12_to_rgb(nv12, mc, not full)
    assert float((other.float() - want.float()).abs().mean()) > 2


def test_swscale_tables_are_the_colour_matrices() -> None:
    """The fixed-point tables are colour.rgb_matrix's matrices (within swscale's rounding)."""
    g = torch.Generator().manual_seed(0)
    h, w = 32, 48
    nv12 = torch.randint(0, 256, (h * 3 // 2, w), dtype=torch.uint8, generator=g)
    y, uv = nv12[:h], nv12[h:].view(h // 2, w // 2, 2)
    for mc in sorted(KR_KB) + [2]:
        for full in (False, True):
            exact = yuv_to_rgb(y, uv[..., 0], uv[..., 1], rgb_matrix(mc, full), full).round().clamp(0, 255)
            diff = (nv12_to_rgb(nv12, mc, full).float() - exact).abs()
            assert float(diff.max()) <= 3 and float(diff.mean()) <= 1.5, (mc, full)


def test_nv12_planes_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="NV12"):
        nv12_planes(torch.zeros(10, 8, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------
# Residuals on the device (CPU tensors)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_residual_planes_bit_exact(clip_factory, backend: str) -> None:
    """Summed residual planes from the one-copy buffer equal the CPU's Stream.residual sums."""
    if backend == "triton":
        pytest.importorskip("triton")
    path = clip_factory(size=(64, 48), frames=12, gop=4, bframes=2, entropy="cavlc", transform_8x8=True)
    with codec.open(path) as s:
        types = [f.type for f in s.frames]
        inter = [i for i, t in enumerate(types) if t in "PB"]
        sources = [(inter[0],), tuple(inter[:3]), (), tuple(inter[2:5]), (inter[0],)]  # incl. a repeat
        host = residuals.gather_coefficients(s, [i for src in sources for i in src], pin=False)
        assert host.buffer.dtype == torch.int16 and host.buffer.dim() == 1
        planes = residuals.residual_planes(host, sources, s.coded_width, s.coded_height, "cpu", backend)
        assert set(planes) == {src for src in sources if src}
        for src, got in planes.items():
            want = [sum(np.asarray(getattr(s.residual(i), p), dtype=np.int32) for i in src) for p in "yuv"]
            for name, g_plane, w_plane in zip("yuv", got, want):
                assert g_plane.dtype == torch.int32
                assert np.array_equal(g_plane.numpy(), w_plane), f"{src} plane {name} ({backend})"
            assert any(int(p.abs().sum()) for p in got)  # not all zero: residuals were exercised


@pytest.mark.parametrize("mode", ["first", "middle", "sum"])
@pytest.mark.parametrize("keep_aspect", [False, True])
def test_device_residuals_equal_cpu_sample(clip_factory, mode: str, keep_aspect: bool) -> None:
    path = clip_factory(size=SIZE, frames=36, gop=6, bframes=2)
    want = codec.sample_clip(path, num_segments=6, size=40, residual=mode, keep_aspect=keep_aspect)
    with codec.open(path) as s:
        got = residuals.residuals_on_device(s, want.residual_frames, 40, keep_aspect, "cpu", "reference")
    assert_residuals_match(got, want.residuals, f"{mode}, keep_aspect {keep_aspect}")
    assert want.residuals.abs().amax() > 1  # real residuals, not zeros


def test_triton_residuals_equal_cpu_sample(clip_factory) -> None:
    pytest.importorskip("triton")
    path = clip_factory(size=(64, 48), frames=12, gop=4)
    want = codec.sample_clip(path, num_segments=3, size=32, residual="sum")
    got = codec.sample_clip(path, 3, 32, "sum", residual_backend="triton")
    assert_same_plan(got, want)
    assert_residuals_match(got.residuals, want.residuals, "triton (interpreted)")


# ---------------------------------------------------------------------------------------------
# The whole device pipeline on CPU tensors


@pytest.mark.parametrize("suffix,settings", [
    (".mp4", {"frames": 48, "gop": 6, "bframes": 2}),     # keyframe policy, B-frames
    (".mkv", {"frames": 40, "gop": 250, "bframes": 2}),   # decoded fallback
    (".h264", {"frames": 48, "gop": 6}),                  # raw Annex B
])
def test_device_pipeline_equals_cpu_path(clip_factory, suffix: str, settings: dict) -> None:
    """NV12 frames (here from PyAV) through the device conversion, resize and residuals."""
    path = clip_factory(suffix, size=SIZE, **settings)
    for mode, keep_aspect in (("middle", False), ("sum", True)):
        want = codec.sample_clip(path, num_segments=8, size=48, residual=mode, keep_aspect=keep_aspect)
        got = codec.sample_clip(path, 8, 48, mode, keep_aspect=keep_aspect, decoder="pyav-nv12",
                                residual_backend="kernels")
        assert_same_plan(got, want)
        assert_frames_match(got.iframes, want.iframes, f"{path.name} {mode}")
        assert_residuals_match(got.residuals, want.residuals, f"{path.name} {mode}")
    assert got.policy == ("decoded" if settings["gop"] == 250 else "keyframes")


def test_pyav_frames_fallback_equals_cpu_path(clip_factory) -> None:
    """Without an NV12 source the frames are the CPU path's own (PyAV rgb24, resized)."""
    path = clip_factory(size=SIZE, frames=24, gop=6)
    want = codec.sample_clip(path.read_bytes(), num_segments=4, size=32)
    got = codec.sample_clip(path.read_bytes(), 4, 32, "middle", residual_backend="kernels")
    assert_same_plan(got, want)
    assert torch.equal(got.iframes, want.iframes)
    assert_residuals_match(got.residuals, want.residuals, "bytes source")


def test_cuda_device_dispatches_to_the_gpu_path(clip_factory, monkeypatch) -> None:
    path = clip_factory(size=SIZE, frames=24, gop=6)
    calls = []

    class Dispatched(Exception):
        pass

    class NvdecStandIn:
        threads = 1

        def frames(self, source, stream, indices, size, keep_aspect, device, pool):
            calls.append((source, len(indices), size, keep_aspect, device))
            raise Dispatched

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(decoders.DECODERS, "nvdec", NvdecStandIn())
    assert default_backends(torch.device("cuda:0")) == ("nvdec", "kernels")
    with pytest.raises(Dispatched):
        codec.sample_clip(path, num_segments=4, size=32, device="cuda:0", keep_aspect=True)
    assert calls == [(path, 4, 32, True, torch.device("cuda:0"))]
    assert codec.sample_clip(path, num_segments=4, size=32).iframes.device.type == "cpu"  # cpu: unchanged


# ---------------------------------------------------------------------------------------------
# NVDEC orchestration against a stand-in for PyNvVideoCodec


@pytest.fixture
def fake_nvc(monkeypatch) -> FakeNvc:
    fake = FakeNvc()
    monkeypatch.setattr(nvdec_module, "_nvc", lambda: fake)
    monkeypatch.setattr(nvdec_module, "_pools", {})
    return fake


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no fallback to PyAV
def test_nvdec_pool_parallel_runs_and_reuse(clip_factory, fake_nvc: FakeNvc) -> None:
    a = clip_factory(size=SIZE, frames=48, gop=4, seed=0)   # 12 GOPs: 4 runs
    b = clip_factory(size=SIZE, frames=48, gop=6, seed=1, bframes=2)
    want_a = codec.sample_clip(a, num_segments=8, size=32)
    got_a = codec.sample_clip(a, 8, 32, "middle", decoder="nvdec", residual_backend="kernels")
    assert_same_plan(got_a, want_a)
    assert_frames_match(got_a.iframes, want_a.iframes, "NVDEC stand-in")
    assert_residuals_match(got_a.residuals, want_a.residuals, "NVDEC stand-in")
    created = len(fake_nvc.created)
    assert 2 <= created <= nvdec_module.NVDEC_SESSIONS and len(fake_nvc.threads) > 1  # runs in parallel threads
    # only the sampled keyframes were asked for, each once, in NVDEC_SESSIONS contiguous runs
    assert sorted(i for r in fake_nvc.requests for i in r) == want_a.frame_indices
    assert all(r == sorted(r) for r in fake_nvc.requests) and len(fake_nvc.requests) == nvdec_module.NVDEC_SESSIONS
    # the next clip reuses the sessions (reconfigured, not created); the same file again: neither
    got_b = codec.sample_clip(b, 8, 32, "sum", decoder="nvdec", residual_backend="kernels")
    assert len(fake_nvc.created) == created
    assert fake_nvc.reconfigured and set(fake_nvc.reconfigured) == {str(b)}
    reconfigured = len(fake_nvc.reconfigured)
    codec.sample_clip(b, 8, 32, "sum", decoder="nvdec", residual_backend="kernels")
    assert (len(fake_nvc.created), len(fake_nvc.reconfigured)) == (created, reconfigured)
    want_b = codec.sample_clip(b, num_segments=8, size=32, residual="sum")
    assert_same_plan(got_b, want_b)
    assert_frames_match(got_b.iframes, want_b.iframes, "reconfigured stand-in")


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no fallback to PyAV
def test_nvdec_fallback_policy_and_raw_streams(clip_factory, fake_nvc: FakeNvc) -> None:
    """The decoded fallback goes through Demuxer + Decoder, which is handed only the pictures
    the CPU path decodes (unreferenced ones left out, nothing after the last sampled one);
    raw Annex B streams too (every packet, up to the last sampled frame)."""
    for suffix in (".mp4", ".mov", ".h264"):
        path = clip_factory(suffix, size=SIZE, frames=40, gop=250, bframes=2)
        want = codec.sample_clip(path, num_segments=6, size=32)
        fake_nvc.fed.clear()
        got = codec.sample_clip(path, 6, 32, "middle", decoder="nvdec", residual_backend="kernels")
        assert got.policy == "decoded"
        assert_same_plan(got, want)
        assert_frames_match(got.iframes, want.iframes, suffix)
        if suffix == ".h264":
            continue
        with codec.open(path) as s:
            frames = list(s.frames)
        fed = [next(f for f in frames if f.pts == pts) for pts in fake_nvc.fed]
        last = max(frames[i].decode_index for i in want.frame_indices)
        assert [f.decode_index for f in fed] == sorted(f.decode_index for f in fed)  # decoding order
        assert all(f.reference or f.index in want.frame_indices for f in fed)
        assert any(not f.reference for f in frames if f.decode_index < last)  # there were some to leave out
        assert {f.index for f in frames if f.decode_index <= last and (f.reference or f.index in want.frame_indices)} \
            == {f.index for f in fed}
    assert fake_nvc.requests == [] and fake_nvc.created == []  # no SimpleDecoder


def test_nvdec_forward_frame_count_mismatch_falls_back_to_pyav(clip_factory, fake_nvc: FakeNvc,
                                                              monkeypatch) -> None:
    """A decoder that drops a picture cannot be mapped to display indices: PyAV decodes instead."""
    path = clip_factory(size=SIZE, frames=30, gop=250, bframes=2)
    want = codec.sample_clip(path, num_segments=6, size=32)
    decode = FakeDecoder.Decode
    monkeypatch.setattr(FakeDecoder, "Decode", lambda self, p: decode(self, p)[1:] if p.bsl == 0 else decode(self, p))
    with pytest.warns(RuntimeWarning, match="NVDEC returned"):
        got = codec.sample_clip(path, 6, 32, "middle", decoder="nvdec", residual_backend="kernels")
    assert torch.equal(got.iframes, want.iframes)


def test_nvdec_frame_count_mismatch_falls_back_to_pyav(clip_factory, fake_nvc: FakeNvc, monkeypatch) -> None:
    path = clip_factory(size=SIZE, frames=24, gop=6)
    monkeypatch.setattr(FakeSimpleDecoder, "__len__", lambda self: len(self.frames) - 1)
    want = codec.sample_clip(path, num_segments=4, size=32)
    with pytest.warns(RuntimeWarning, match="counts 23 frames"):
        got = codec.sample_clip(path, 4, 32, "middle", decoder="nvdec", residual_backend="kernels")
    assert torch.equal(got.iframes, want.iframes)


def _sample_nvdec(path, num_segments: int = 4, fallback: str | None = None) -> codec.ClipSample:
    """sample_clip through the NVDEC stand-in; `fallback`: the warning expected when the
    frames fall back to PyAV (None: no fallback allowed). Checks the result against the CPU path."""
    want = codec.sample_clip(path, num_segments=num_segments, size=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = codec.sample_clip(path, num_segments, 32, "middle", decoder="nvdec", residual_backend="kernels")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if fallback is None:
        assert messages == []
    else:
        assert len(messages) == 1 and fallback in messages[0] and "decoded by PyAV instead" in messages[0], messages
    assert_same_plan(got, want)
    assert_frames_match(got.iframes, want.iframes, f"NVDEC stand-in, fallback {fallback!r}")
    return got


def _raise(error: BaseException):
    def native_frames(self, indices):
        raise error
    return native_frames


@pytest.mark.parametrize("failure,name", [
    (_raise(FakeNvc.PyNvVCExceptionUnsupported("unsupported")), "PyNvVCExceptionUnsupported"),
    (_raise(FakeNvc.PyNvVCException("cuvidDecodePicture failed")), "PyNvVCException"),
    (_raise(RuntimeError("CUDA error")), "RuntimeError"),  # from C++
    (lambda self, indices: self.frames[:len(indices) - 1], "IndexError"),  # fewer frames: the wrapper's IndexError
    (None, "Exception"),  # 0 frames: the wrapper's bare Exception
])
def test_nvdec_failures_fall_back_to_pyav(clip_factory, fake_nvc: FakeNvc, monkeypatch, failure, name) -> None:
    """Whatever the binding raises, PyAV decodes the clip's frames, with a warning naming the file."""
    path = clip_factory(size=SIZE, frames=24, gop=6)
    if failure is None:
        monkeypatch.setattr(FakeSimpleDecoder, "__len__", lambda self: 0)
    else:
        monkeypatch.setattr(FakeSimpleDecoder, "native_frames", failure)
    _sample_nvdec(path, fallback=f"NVDEC failed on {path} ({name}: ")


def test_nvdec_frames_other_than_asked_fall_back(clip_factory, fake_nvc: FakeNvc, monkeypatch) -> None:
    """Inexact seeking (Matroska; MOV's estimated indices) hands back neighbouring frames: their
    timestamps give them away."""
    path = clip_factory(size=SIZE, frames=24, gop=6)
    _sample_nvdec(path)  # the timestamps of the right frames pass
    monkeypatch.setattr(FakeSimpleDecoder, "native_frames",
                        lambda self, indices: [self.frames[min(i + 1, len(self) - 1)] for i in indices])
    _sample_nvdec(path, fallback="its indices are not display indices")


def test_nvdec_frames_of_another_layout_fall_back(clip_factory, fake_nvc: FakeNvc, monkeypatch) -> None:
    """Frames that are not NV12 of the picture's size (here: surfaces of the coded size, 160x96
    for 152x88) fall back to PyAV instead of failing the clip."""
    path = clip_factory(size=SIZE, frames=24, gop=6)
    coded = np.zeros((96 * 3 // 2, 160), np.uint8)
    monkeypatch.setattr(FakeSimpleDecoder, "native_frames",
                        lambda self, indices: [FakeFrame(coded, self.frames[i].timestamp) for i in indices])
    _sample_nvdec(path, fallback="not NV12 [132, 152]")


def test_nvdec_in_memory_containers(clip_factory, fake_nvc: FakeNvc) -> None:
    """MP4 bytes: SimpleDecoder takes them; the demuxer of forward decoding takes file names
    only (bytes would be read as one), so that clip's frames come from PyAV."""
    _sample_nvdec(clip_factory(size=SIZE, frames=24, gop=6).read_bytes())
    forward = clip_factory(size=SIZE, frames=40, gop=250, bframes=2)
    got = _sample_nvdec(forward.read_bytes(), num_segments=6, fallback="reads files, not data in memory")
    assert got.policy == "decoded" and fake_nvc.demuxed == 0


def test_nvdec_forward_decoding_stops_after_the_last_needed_picture(clip_factory, fake_nvc: FakeNvc) -> None:
    path = clip_factory(size=SIZE, frames=40, gop=250, bframes=2)
    got = _sample_nvdec(path, num_segments=2)
    with codec.open(path) as s:
        last = max(s.frames[i].decode_index for i in got.frame_indices)
    assert got.policy == "decoded" and last < 35  # the premise: a good part of the file is not needed
    assert fake_nvc.demuxed == last + 1  # then a flush, and the rest of the file is not read


def test_nvdec_scans_no_file(clip_factory, fake_nvc: FakeNvc) -> None:
    """need_scanned_stream_metadata=False: creating or reconfiguring a decoder reads no whole file."""
    for seed in (0, 1):
        _sample_nvdec(clip_factory(size=SIZE, frames=24, gop=6, seed=seed))
    assert fake_nvc.created and fake_nvc.reconfigured and fake_nvc.scans == 0


def test_decoder_pool_hands_each_slot_to_one_thread() -> None:
    pool = nvdec_module.DecoderPool("cpu", size=2)
    held, peak, lock = set(), [0], threading.Lock()

    def use(_: int) -> None:
        with pool.borrow() as slot:
            with lock:
                assert id(slot) not in held
                held.add(id(slot))
                peak[0] = max(peak[0], len(held))
            threading.Event().wait(0.01)
            with lock:
                held.discard(id(slot))

    threads = [threading.Thread(target=use, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and pool._created == 2


# ---------------------------------------------------------------------------------------------
# On a GPU (NOT YET RUN: no GPU was available when these were written)


def _have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def gpu_clips(tmp_path_factory) -> list[Path]:
    """Generated clips (PyAV present): keyframe policy with and without B-frames, the decoded
    fallback, Matroska and raw Annex B; else the carried .bench_clips/*.h264."""
    if _have_pyav():
        from tools.clips import make_clip

        root = tmp_path_factory.mktemp("gpu_clips")
        return [make_clip(root / "gop6.mp4", size=(320, 180), frames=60, gop=6),
                make_clip(root / "gop8-b.mkv", size=(320, 180), frames=64, gop=8, bframes=2),
                make_clip(root / "gop250-b.mp4", size=(320, 180), frames=60, gop=250, bframes=3),
                make_clip(root / "gop6.h264", size=(318, 180), frames=48, gop=6),
                make_clip(root / "gop250.h264", size=(318, 180), frames=48, gop=250)]  # ends near EOF
    carried = sorted((Path(__file__).resolve().parent.parent / ".bench_clips").glob("*.h264"))[:2]
    if not carried:
        pytest.skip("no PyAV to generate clips and no .bench_clips/*.h264 (see benchmarks/gpu_check.sh)")
    return carried


@pytest.fixture
def nvdec() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    if not nvdec_module.nvdec_available():
        pytest.skip(f"PyNvVideoCodec is not usable: {nvdec_module._nvc_error}")


@pytest.mark.gpu
def test_gpu_residual_planes_bit_exact(gpu_clips: list[Path]) -> None:
    for path in gpu_clips:
        with codec.open(path) as s:
            inter = [f.index for f in s.frames if f.type in "PB"][:6]
            sources = [(i,) for i in inter] + [tuple(inter)]
            host = residuals.gather_coefficients(s, inter, pin=True)
            assert host.buffer.is_pinned()
            planes = residuals.residual_planes(host, sources, s.coded_width, s.coded_height, "cuda")
            for src, got in planes.items():
                assert all(p.is_cuda for p in got)
                want = [sum(np.asarray(getattr(s.residual(i), p), dtype=np.int32) for i in src) for p in "yuv"]
                for name, g_plane, w_plane in zip("yuv", got, want):
                    assert np.array_equal(g_plane.cpu().numpy(), w_plane), f"{path.name} {src} plane {name}"


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["middle", "sum"])
def test_gpu_sample_clip_equals_cpu_path(gpu_clips: list[Path], nvdec: None, mode: str) -> None:
    if not _have_pyav():
        pytest.skip("the CPU path needs PyAV")
    for path in gpu_clips:
        cpu = codec.sample_clip(path, num_segments=8, size=112, residual=mode)
        got = codec.sample_clip(path, num_segments=8, size=112, residual=mode, device="cuda")
        assert got.iframes.is_cuda and got.residuals.is_cuda
        assert_same_plan(got, cpu)
        # same decoded YUV and the same conversion: only bilinear resizing may round differently
        diff = (got.iframes.cpu().int() - cpu.iframes.int()).abs()
        assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.01, f"{path.name}: frames"
        assert_residuals_match(got.residuals, cpu.residuals, f"{path.name}: residuals")


@pytest.mark.gpu
def test_gpu_nvdec_decodes_without_falling_back(gpu_clips: list[Path], nvdec: None) -> None:
    """NVDEC, not PyAV, gives the frames of the MP4 and raw clips: a fallback warning here means
    that the binding failed or that its frames disagree with the parser (count, layout, or
    timestamps: in the stream's time base on an H100, not the milliseconds first assumed)."""
    for path in gpu_clips:
        if path.suffix == ".mkv":
            continue  # PyNvVideoCodec calls its Matroska seeking inexact: a fallback is allowed there
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            s = codec.sample_clip(path, num_segments=8, size=64, device="cuda")
        assert s.iframes.is_cuda, path.name


def _dtoh_bytes(trace: Path) -> list[int]:
    """Sizes of the device-to-host copies in a chrome trace written by torch.profiler."""
    events = json.loads(trace.read_text()).get("traceEvents", [])
    return [int(e.get("args", {}).get("bytes", 0)) for e in events
            if e.get("cat") == "gpu_memcpy" and "DtoH" in e.get("name", "")]


@pytest.mark.gpu
def test_gpu_no_host_round_trip(gpu_clips: list[Path], nvdec: None, tmp_path: Path) -> None:
    from torch.profiler import ProfilerActivity, profile

    path = gpu_clips[0]
    codec.sample_clip(path, num_segments=8, size=112, device="cuda")  # warm up: sessions, kernels
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        s = codec.sample_clip(path, num_segments=8, size=112, device="cuda")
        torch.cuda.synchronize()
    prof.export_chrome_trace(str(tmp_path / "sample.json"))
    assert s.iframes.is_cuda and s.residuals.is_cuda
    copies = _dtoh_bytes(tmp_path / "sample.json")
    assert max(copies, default=0) < 4096, f"device-to-host copies during sample_clip: {copies}"
    # the check sees a pixel copy when there is one
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        s.iframes.cpu()
        torch.cuda.synchronize()
    prof.export_chrome_trace(str(tmp_path / "copy.json"))
    assert max(_dtoh_bytes(tmp_path / "copy.json"), default=0) >= s.iframes.numel()


@pytest.mark.gpu
def test_gpu_sessions_are_reused(gpu_clips: list[Path], nvdec: None) -> None:
    device = torch.device("cuda", torch.cuda.current_device())
    for path in gpu_clips:
        codec.sample_clip(path, num_segments=8, size=64, device="cuda")
    created = nvdec_module.decoder_pool(device)._created
    if any(p.suffix != ".h264" for p in gpu_clips):  # containers decode through the pool
        assert created >= 1, "no NVDEC session was created: reuse is not being tested"
    for path in gpu_clips:
        codec.sample_clip(path, num_segments=8, size=64, device="cuda")
    assert nvdec_module.decoder_pool(device)._created == created <= nvdec_module.NVDEC_SESSIONS


@pytest.mark.gpu
def test_gpu_without_pynvvideocodec_warns_and_uses_pyav(gpu_clips: list[Path], monkeypatch) -> None:
    if not _have_pyav():
        pytest.skip("frames come from PyAV in this mode")
    monkeypatch.setattr(nvdec_module, "_nvc", lambda: None)
    monkeypatch.setattr(nvdec_module, "_nvc_error", "ModuleNotFoundError: (test)")
    monkeypatch.setattr(nvdec_module, "_warned_cpu_frames", False)
    path = gpu_clips[0]
    with pytest.warns(RuntimeWarning, match="PyNvVideoCodec is not usable"):
        got = codec.sample_clip(path, num_segments=8, size=112, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.sample_clip(path, num_segments=8, size=112, device="cuda")  # warned once only
    cpu = codec.sample_clip(path, num_segments=8, size=112)
    assert got.iframes.is_cuda and got.residuals.is_cuda
    assert torch.equal(got.iframes.cpu(), cpu.iframes)
    assert_residuals_match(got.residuals, cpu.residuals, "PyAV frames, GPU residuals")
