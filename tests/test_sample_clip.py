"""codec.sample_clip (CPU path): sampling policy, decoded frames, residuals, colour conversion.

PyAV is the oracle for the frames (a full sequential decode indexed in display order) and for
the colour matrix (swscale's rgb24 conversion of the decoded YUV planes).
"""

from __future__ import annotations

import itertools
import random
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tools.clips import make_foreign_clip, make_tagged_clip
from vccv_gpu import codec
from vccv_gpu.codec.colour import residual_to_rgb, rgb_matrix, yuv_to_rgb
from vccv_gpu.codec.decoders import register_decoder
from vccv_gpu.codec.plan import choose_keyframes, gop_residual_frames, uniform_indices
from vccv_gpu.codec.pyav_frames import PyAVDecoder
from vccv_gpu.codec.resample import resize
from vccv_gpu.codec.residuals import summed_residual

SIZE = (160, 96)


class RecordingDecoder(PyAVDecoder):
    """The PyAV decoder with `workers` threads, recording every picture handed to libavcodec
    (display index, None when unknown) and the threads that decoded them."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.fed: list[int | None] = []
        self.threads_seen: set[int] = set()

    def send(self, ctx, packet, index):
        self.fed.append(index)
        self.threads_seen.add(threading.get_ident())
        return super().send(ctx, packet, index)


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame, RGB uint8 [H, W, 3], in output (display) order: the oracle."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def resized(frames: list[np.ndarray], size: int, keep_aspect: bool = False) -> torch.Tensor:
    x = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in frames]).float()
    return resize(x, size, keep_aspect).round().clamp(0, 255).to(torch.uint8)


def residual_rgb(stream: codec.Stream, indices: tuple[int, ...], matrix: np.ndarray) -> torch.Tensor:
    """float32 [3, height, width]: the summed residual converted at full size (the oracle)."""
    return residual_to_rgb(*summed_residual(stream, indices), matrix, height=stream.height, width=stream.width)


def frame_types(path: Path) -> list[str]:
    with codec.open(path) as s:
        return [f.type for f in s.frames]


# ---------------------------------------------------------------------------------------
# Policy as pure functions
# ---------------------------------------------------------------------------------------


def test_uniform_indices_are_segment_centres() -> None:
    assert uniform_indices(40, 8) == [2, 7, 12, 17, 22, 27, 32, 37]
    assert uniform_indices(20, 20) == list(range(20))
    assert uniform_indices(1, 1) == [0]
    assert uniform_indices(3, 6) == [0, 0, 1, 1, 2, 2]  # fewer frames than segments: repeats


def test_choose_keyframes_nearest_when_distinct() -> None:
    keys = list(range(0, 240, 12))  # 20 GOPs of 12
    assert choose_keyframes(keys, 240, 20) == keys
    # 10 of 20 GOPs: u_j = 12 + 24 j - 0.5 -> nearest 12 + 24 j
    assert choose_keyframes(keys, 240, 10) == list(range(12, 240, 24))


def test_choose_keyframes_resolves_duplicates_and_ties() -> None:
    # u = 12, 37, 62, 87: nearest would be 2, 50, 50, 99; least total displacement: 1, 2, 50, 99
    assert choose_keyframes([0, 1, 2, 50, 99], 100, 4) == [1, 2, 50, 99]
    # u = 5, equidistant from 4 and 6: the earlier one
    assert choose_keyframes([4, 6], 11, 1) == [4]
    # exactly as many keyframes as segments: all of them, whatever the positions
    assert choose_keyframes([0, 1, 2, 3], 1000, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        choose_keyframes([0, 5], 10, 3)


def test_choose_keyframes_matches_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(200):
        num_frames = rng.randint(5, 40)
        n = rng.randint(1, 5)
        keys = sorted(rng.sample(range(num_frames), rng.randint(n, min(num_frames, n + 4))))
        costs = {c: sum(abs(2 * n * k - ((2 * j + 1) * num_frames - n)) for j, k in enumerate(c))
                 for c in itertools.combinations(keys, n)}
        best = min(costs.values())
        expected = min(c for c, v in costs.items() if v == best)  # lexicographically smallest
        got = choose_keyframes(keys, num_frames, n)
        assert tuple(got) == expected, (keys, num_frames, n)
        assert len(set(got)) == n


def test_gop_residual_frames_rules() -> None:
    types = list("IBBPBBPBBP" "IPPPP" "IBB" "I")
    keys = [0, 10, 15, 18]
    assert gop_residual_frames(types, keys, 0, "first") == (3,)     # first P, not the first B
    assert gop_residual_frames(types, keys, 0, "middle") == (6,)    # P list 3, 6, 9
    assert gop_residual_frames(types, keys, 0, "sum") == (3, 6, 9)  # B frames not summed
    assert gop_residual_frames(types, keys, 10, "middle") == (13,)  # P list 11..14: upper middle
    assert gop_residual_frames(types, keys, 15, "first") == (16,)   # no P: B frames instead
    assert gop_residual_frames(types, keys, 15, "sum") == (16, 17)
    assert gop_residual_frames(types, keys, 18, "middle") == ()     # no inter frame: zeros


# ---------------------------------------------------------------------------------------
# Colour: the matrix is the one PyAV/swscale uses for the frames
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("colorspace, color_range, expected_mc, full", [
    (2, 1, 2, False),   # unspecified matrix, limited range: swscale's default BT.601
    (1, 1, 1, False),   # BT.709, limited
    (1, 2, 1, True),    # BT.709, full range
    (6, 2, 6, True),    # SMPTE 170M (BT.601), full range
])
def test_rgb_matrix_is_swscales(tmp_path: Path, colorspace: int, color_range: int, expected_mc: int,
                                full: bool) -> None:
    path = make_tagged_clip(tmp_path / "tagged.mp4", colorspace, color_range, SIZE)
    with codec.open(path) as s:
        mc, full_range = s.sequence["matrix_coefficients"], s.sequence["full_range"]
    assert (mc, full_range) == (expected_mc, full)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float()
        w, h = SIZE
        yuv = frame.to_ndarray()  # yuv420p: Y rows, then U and V packed
        y = torch.from_numpy(yuv[:h].copy())
        u = torch.from_numpy(yuv[h:h + h // 4].reshape(h // 2, w // 2).copy())
        v = torch.from_numpy(yuv[h + h // 4:].reshape(h // 2, w // 2).copy())

    def error(matrix_coefficients: int, full_range: bool) -> float:
        ours = yuv_to_rgb(y, u, v, rgb_matrix(matrix_coefficients, full_range), full_range)
        return float((ours.round().clamp(0, 255) - rgb).abs().mean())

    err = error(mc, full_range)
    assert err < 1.5
    assert float((yuv_to_rgb(y, u, v, rgb_matrix(mc, full_range), full_range).round().clamp(0, 255)
                  - rgb).abs().max()) <= 3
    other_matrix = 1 if mc != 1 else 5
    assert error(other_matrix, full_range) > err + 0.5
    assert error(mc, not full_range) > err + 2

    # sample_clip converts the residual with this stream's matrix and range
    s = codec.sample_clip(path, num_segments=1, size=32, residual="first")
    (index,) = s.residual_indices
    with codec.open(path) as st:
        assert st.frames[index].type == "P"
        r = st.residual(index)
    planes = [torch.from_numpy(np.array(p)) for p in (r.y, r.u, r.v)]
    expected = resize(residual_to_rgb(*planes, rgb_matrix(mc, full_range))[None], 32)[0]
    torch.testing.assert_close(s.residuals[0].float(), expected, rtol=2e-3, atol=0.05)
    wrong = resize(residual_to_rgb(*planes, rgb_matrix(other_matrix, not full_range))[None], 32)[0]
    assert float((wrong - expected).abs().max()) > 1


def test_residual_conversion_is_the_linear_part() -> None:
    m = rgb_matrix(1, False)
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(16, 236, (8, 12), generator=gen)
    u, v = (torch.randint(16, 241, (4, 6), generator=gen) for _ in range(2))
    dy = torch.randint(-40, 40, (8, 12), generator=gen)
    du, dv = (torch.randint(-40, 40, (4, 6), generator=gen) for _ in range(2))
    diff = yuv_to_rgb(y + dy, u + du, v + dv, m, False) - yuv_to_rgb(y, u, v, m, False)
    torch.testing.assert_close(residual_to_rgb(dy, du, dv, m), diff, rtol=0, atol=1e-3)
    # a pure luma residual of +219 is +255 in every channel (limited range)
    zero = torch.zeros(4, 6, dtype=torch.int16)
    out = residual_to_rgb(torch.full((8, 12), 219, dtype=torch.int16), zero, zero, m)
    torch.testing.assert_close(out, torch.full((3, 8, 12), 255.0))


# ---------------------------------------------------------------------------------------
# sample_clip on generated clips
# ---------------------------------------------------------------------------------------


def test_keyframe_policy_shapes_and_frames(clip_factory) -> None:
    path = clip_factory(size=SIZE, frames=48, gop=4)  # 12 keyframes, no B frames
    s = codec.sample_clip(path, num_segments=8, size=64, device="cpu")
    assert s.policy == "keyframes"
    assert s.iframes.shape == (8, 3, 64, 64) and s.iframes.dtype == torch.uint8
    assert s.residuals.shape == (8, 3, 64, 64) and s.residuals.dtype == torch.float16
    assert s.iframes.device.type == "cpu" and s.residuals.device.type == "cpu"
    with codec.open(path) as st:
        keys = st.keyframes
        fps, duration = st.fps, st.duration
    assert keys == list(range(0, 48, 4))
    assert len(set(s.frame_indices)) == 8 and set(s.frame_indices) <= set(keys)
    # u_j = 2.5 + 6 j: nearest keyframes 4, 8, 16, 20, 28, 32, 40, 44 (2.5 -> 4 at 1.5, not 0)
    assert s.frame_indices == [4, 8, 16, 20, 28, 32, 40, 44]
    assert (s.fps, s.duration) == (fps, duration) == (25.0, 48 / 25)
    # default residual "middle": P frames k+1..k+3 -> k+2
    assert s.residual_indices == [k + 2 for k in s.frame_indices]
    oracle = decode_all(path)
    assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 64))
    from_bytes = codec.sample_clip(path.read_bytes(), num_segments=8, size=64)
    assert torch.equal(from_bytes.iframes, s.iframes) and torch.equal(from_bytes.residuals, s.residuals)


def test_all_keyframes_when_as_many_as_segments(clip_factory) -> None:
    path = clip_factory(size=SIZE, frames=40, gop=2)
    s = codec.sample_clip(path, num_segments=20, size=32)
    assert s.policy == "keyframes"
    assert s.frame_indices == list(range(0, 40, 2))
    assert s.residual_indices == list(range(1, 40, 2))


@pytest.mark.parametrize("suffix", [".mp4", ".h264", ".ts"])
def test_residual_modes_with_b_frames(clip_factory, suffix: str) -> None:
    path = clip_factory(suffix, size=SIZE, frames=48, gop=6, bframes=2)
    types = frame_types(path)
    assert "B" in types
    keys = [i for i, t in enumerate(types) if t == "I"]
    oracle = decode_all(path)
    samples = {mode: codec.sample_clip(path, num_segments=8, size=48, residual=mode)
               for mode in ("first", "middle", "sum")}
    for mode, s in samples.items():
        assert s.policy == "keyframes"
        assert s.frame_indices == keys  # 8 GOPs, 8 segments
        assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 48)), mode
    for j, k in enumerate(keys):
        end = keys[j + 1] if j + 1 < len(keys) else len(types)
        ps = [i for i in range(k + 1, end) if types[i] == "P"]
        assert samples["first"].residual_frames[j] == (ps[0],)
        assert samples["middle"].residual_frames[j] == (ps[len(ps) // 2],)
        assert samples["sum"].residual_frames[j] == tuple(ps)
        assert samples["sum"].residual_indices[j] == ps[0]
    # sum == the sum of the individual P residuals (resizing is linear)
    with codec.open(path) as st:
        m = rgb_matrix(st.sequence["matrix_coefficients"], st.sequence["full_range"])
        for j, frames in enumerate(samples["sum"].residual_frames):
            parts = torch.stack([residual_rgb(st, (i,), m) for i in frames])
            expected = resize(parts, 48).sum(0)
            torch.testing.assert_close(samples["sum"].residuals[j].float(), expected, rtol=2e-3, atol=0.05)
            single = resize(residual_rgb(st, (frames[0],), m)[None], 48)[0]
            torch.testing.assert_close(samples["first"].residuals[j].float(), single, rtol=2e-3, atol=0.05)


@pytest.mark.parametrize("suffix", [".mp4", ".h264"])
def test_decoded_fallback_for_long_gop(clip_factory, suffix: str) -> None:
    path = clip_factory(suffix, size=SIZE, frames=40, gop=250, bframes=2)
    types = frame_types(path)
    assert types.count("I") == 1
    s = codec.sample_clip(path, num_segments=8, size=40)
    assert s.policy == "decoded"
    assert s.frame_indices == uniform_indices(40, 8) == [2, 7, 12, 17, 22, 27, 32, 37]
    for i, r in zip(s.frame_indices, s.residual_indices):
        assert r == next(x for x in range(i, 40) if types[x] in "PB")
    oracle = decode_all(path)
    assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 40))
    assert s.iframes.shape == (8, 3, 40, 40) and s.residuals.shape == (8, 3, 40, 40)


@pytest.mark.parametrize("gop", [6, 250])
def test_containers_with_timestamps_seek(clip_factory, gop: int) -> None:
    """mp4/mkv: frames come from seeks to their keyframes, never from decoding from the start."""

    class SeekingOnly(PyAVDecoder):
        def decode_in_order(self, *args, **kwargs):
            raise AssertionError("decoded from the start")

    register_decoder("pyav-seeking-only", SeekingOnly())
    for suffix in (".mp4", ".mkv"):
        path = clip_factory(suffix, size=SIZE, frames=48, gop=gop, bframes=2)
        s = codec.sample_clip(path, num_segments=8, size=32, decoder="pyav-seeking-only")
        oracle = decode_all(path)
        assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 32))


@pytest.mark.parametrize("suffix,one_pass", [(".mp4", True), (".mov", True), (".mkv", False), (".ts", False),
                                             (".h264", False)])
def test_mp4_is_demuxed_once(clip_factory, monkeypatch, suffix: str, one_pass: bool) -> None:
    """MP4/MOV: codec.open records where each packet lies and the decoder reads the packets from
    there, opening no container of its own; other containers are opened again (and seek)."""
    path = clip_factory(suffix, size=SIZE, frames=36, gop=6, bframes=2)
    with codec.open(path) as st:
        spans = st.packet_spans
        assert (spans is not None) == one_pass
        if spans is not None:
            with av.open(str(path)) as container:
                packets = [bytes(p) for p in container.demux(video=0) if p.size]
            data = path.read_bytes()
            assert [data[pos:pos + size] for pos, size in (spans[d] for d in range(len(packets)))] == packets
    opened: list[object] = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    oracle = decode_all(path)
    opened.clear()
    for source in (path, path.read_bytes()):
        for gop_policy_segments in (4, 12):  # keyframes, then the decoded fallback (6 GOPs < 12)
            s = codec.sample_clip(source, num_segments=gop_policy_segments, size=32)
            assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 32))
    if suffix == ".h264":
        assert len(opened) == 4  # raw Annex B: parsed without PyAV; one decoding pass in order
    elif one_pass:
        assert len(opened) == 4  # the parser's demuxing only
    else:
        assert len(opened) > 4


@pytest.mark.parametrize("workers", [1, 2])
def test_fallback_skips_unreferenced_pictures(clip_factory, workers: int) -> None:
    """The decoded fallback hands the decoder only the sampled pictures and those others
    predict from (nal_ref_idc != 0), nothing past the last sampled one; same frames out."""
    path = clip_factory(size=SIZE, frames=40, gop=250, bframes=2)
    with codec.open(path) as st:
        frames = list(st.frames)
    recording = RecordingDecoder(workers)
    register_decoder("pyav-recording", recording)
    s = codec.sample_clip(path, num_segments=8, size=40, decoder="pyav-recording")
    fed = recording.fed
    assert s.policy == "decoded"
    assert None not in fed and len(fed) == len(set(fed))
    assert set(s.frame_indices) <= set(fed)
    skippable = [f.index for f in frames if not f.reference and f.index not in s.frame_indices]
    assert skippable and not set(skippable) & set(fed)  # non-reference B pictures exist, none fed
    assert all(frames[i].reference for i in fed if i not in s.frame_indices)
    last = max(frames[i].decode_index for i in s.frame_indices)
    assert all(frames[i].decode_index <= last for i in fed)
    assert len(fed) < len(frames)
    oracle = decode_all(path)
    assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 40))


@pytest.mark.parametrize("suffix,gop,bframes", [(".mp4", 4, 0), (".mkv", 6, 2), (".mp4", 20, 2)])
def test_parallel_decoding_matches_sequential(clip_factory, suffix: str, gop: int,
                                               bframes: int) -> None:
    """Several containers decoding GOPs in threads give exactly the one-decoder result."""
    path = clip_factory(suffix, size=SIZE, frames=48, gop=gop, bframes=bframes)
    results, threads = {}, {}
    for workers in (1, 4):
        recording = RecordingDecoder(workers)
        register_decoder("pyav-recording", recording)
        results[workers] = [codec.sample_clip(src, num_segments=8, size=48, residual=mode, decoder="pyav-recording")
                            for src in (path, path.read_bytes()) for mode in ("middle", "sum")]
        threads[workers] = len(recording.threads_seen)
    assert threads[1] == 1 and threads[4] > 1
    for a, b in zip(results[1], results[4]):
        assert torch.equal(a.iframes, b.iframes) and torch.equal(a.residuals, b.residuals)
        assert (a.frame_indices, a.residual_frames, a.policy) == (b.frame_indices, b.residual_frames, b.policy)
    oracle = decode_all(path)
    s = results[4][0]
    assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 48))


def test_fallback_residual_of_intra_frame_is_next_inter(clip_factory) -> None:
    path = clip_factory(size=SIZE, frames=10, gop=250)
    s = codec.sample_clip(path, num_segments=20, size=16)  # more segments than frames
    assert s.policy == "decoded"
    assert s.frame_indices == uniform_indices(10, 20)
    assert s.frame_indices[0] == 0 and s.residual_indices[0] == 1  # I frame -> next P frame


def test_intra_only_clip_gives_zero_residuals(clip_factory) -> None:
    path = clip_factory(size=SIZE, frames=6, gop=1, weightp=0)  # x264 drops weightp when intra-only
    s = codec.sample_clip(path, num_segments=3, size=16)
    assert s.policy == "keyframes"
    assert s.residual_indices == [-1, -1, -1] and s.residual_frames == [(), (), ()]
    assert not s.residuals.any()


def test_keep_aspect_centre_crops(clip_factory) -> None:
    path = clip_factory(size=SIZE, frames=24, gop=6)
    oracle = decode_all(path)
    s = codec.sample_clip(path, num_segments=4, size=96, keep_aspect=True)
    # short side already 96: no resampling, just the central 96 columns of 160
    expected = torch.stack([torch.from_numpy(oracle[i][:, 32:128]).permute(2, 0, 1) for i in s.frame_indices])
    assert torch.equal(s.iframes, expected)
    small = codec.sample_clip(path, num_segments=4, size=48, keep_aspect=True)
    assert torch.equal(small.iframes, resized([oracle[i] for i in s.frame_indices], 48, keep_aspect=True))
    # that is torch's bilinear interpolation of the short side to 48, then the central 48 columns
    full = torch.stack([torch.from_numpy(oracle[i]).permute(2, 0, 1) for i in s.frame_indices]).float()
    half = F.interpolate(full, size=(48, 80), mode="bilinear", align_corners=False)[..., 16:64]
    assert (small.iframes.float() - half).abs().max() <= 0.5 + 1e-3


def test_cropped_size_not_multiple_of_16(clip_factory) -> None:
    path = clip_factory(size=(152, 88), frames=24, gop=6)
    with codec.open(path) as st:
        assert (st.coded_width, st.coded_height) == (160, 96)
        m = rgb_matrix(st.sequence["matrix_coefficients"], st.sequence["full_range"])
        res = residual_rgb(st, (1,), m)
    assert res.shape == (3, 88, 152)
    s = codec.sample_clip(path, num_segments=4, size=32, residual="first")
    oracle = decode_all(path)
    assert torch.equal(s.iframes, resized([oracle[i] for i in s.frame_indices], 32))


def test_residual_energy_follows_motion(clip_factory) -> None:
    """The residual of P frame t is large where frame t differs from frame t-1 (moving objects,
    panning texture), and much less like the difference of an unrelated frame pair."""
    path = clip_factory(size=SIZE, frames=48, gop=6, seed=1)
    s = codec.sample_clip(path, num_segments=8, size=96, residual="first", keep_aspect=True)
    oracle = [f.astype(np.float32)[:, 32:128] for f in decode_all(path)]
    energy = [F.avg_pool2d(s.residuals[j].float().abs().sum(0)[None, None], 8).flatten() for j in range(8)]
    diffs = []
    for r in s.residual_indices:
        assert r == s.frame_indices[s.residual_indices.index(r)] + 1
        d = torch.from_numpy(np.abs(oracle[r] - oracle[r - 1]).sum(-1))
        diffs.append(F.avg_pool2d(d[None, None], 8).flatten())

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    matched = [corr(energy[j], diffs[j]) for j in range(8)]
    shuffled = [corr(energy[j], diffs[(j + 4) % 8]) for j in range(8)]
    assert min(matched) > 0.2, matched
    assert np.mean(matched) > 0.4, matched
    assert np.mean(matched) > np.mean(shuffled) + 0.2, (matched, shuffled)


def test_bad_arguments(clip_factory) -> None:
    path = clip_factory(size=SIZE, frames=24, gop=6)
    with pytest.raises(ValueError, match="residual"):
        codec.sample_clip(path, residual="mean")
    with pytest.raises(ValueError, match="num_segments"):
        codec.sample_clip(path, num_segments=0)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01\x02 not a video at all " * 50)
    with pytest.raises((codec.CorruptStream, codec.UnsupportedStream), match="junk.mp4"):
        codec.sample_clip(junk, num_segments=2)
    foreign = make_foreign_clip(tmp_path / "foreign.mkv", "mpeg4", frames=4)
    with pytest.raises(codec.UnsupportedStream, match="foreign.mkv"):
        codec.sample_clip(foreign, num_segments=2)


@pytest.mark.gpu
def test_device_cuda(clip_factory) -> None:
    path = clip_factory(size=SIZE, frames=24, gop=6)
    s = codec.sample_clip(path, num_segments=4, size=32, device="cuda")
    assert s.iframes.is_cuda and s.residuals.is_cuda
    cpu = codec.sample_clip(path, num_segments=4, size=32)
    # The same resampling arithmetic on both devices (resample.py): the same tensors.
    assert torch.equal(s.iframes.cpu(), cpu.iframes)
    assert torch.equal(s.residuals.cpu(), cpu.residuals)
