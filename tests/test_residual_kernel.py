"""Residual reconstruction on the device (`vccv_gpu.kernels.residual.reconstruct_residual`): the Triton
kernels and their plain-PyTorch reference, each bit-exact with the parser's CPU `Stream.residual`
(csrc/transform.cpp) on every frame of generated clips, and with each other (and with a scalar
Python transcription of the C++) on synthetic blocks of extreme coefficients.

Without CUDA the kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1, set here before the
kernels are first used: `residual/triton.py`, imported then, decorates them); the `gpu` tests repeat
the comparison on CUDA at 1080p.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from vccv_gpu import codec
from vccv_gpu.kernels.residual import reconstruct_residual

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BACKENDS = [pytest.param("triton", id="triton"), pytest.param("reference", id="reference")]


def clip(name: str, **settings):
    return pytest.param(settings, id=name)


# make_clip settings: both entropy coders, 8x8 transform on and off, B-frames, all-intra clips
# (Intra16x16 with its folded DC), low crf (large coefficients), a size that is not a multiple of 16
CLIPS = [
    clip("cavlc-4x4-bframes", entropy="cavlc", transform_8x8=False, bframes=2, crf=8, size=(64, 48), frames=6, gop=4),
    clip("cabac-8x8-bframes", entropy="cabac", transform_8x8=True, bframes=2, crf=6, size=(96, 64), frames=6, gop=4),
    clip("cavlc-8x8-crf1", entropy="cavlc", transform_8x8=True, bframes=0, crf=1, size=(80, 48), frames=3),
    clip("cabac-4x4-crf1", entropy="cabac", transform_8x8=False, bframes=0, crf=1, size=(64, 48), frames=3),
    clip("cabac-intra", entropy="cabac", transform_8x8=True, bframes=0, crf=36, size=(160, 96), frames=3, gop=1,
         weightp=0),
    clip("cavlc-intra-cropped", entropy="cavlc", transform_8x8=False, bframes=0, crf=36, size=(72, 40), frames=3,
         gop=1, weightp=0),
]


def reconstruct(data: torch.Tensor, n4: int, n8: int, width: int, height: int, backend: str):
    return reconstruct_residual(data, n4, n8, width, height, backend=backend)


def assert_planes_equal(got, want, what: str) -> None:
    for name, g, w in zip("yuv", got, want):
        g = g.cpu().numpy()
        assert g.dtype == np.int16 and g.shape == w.shape, f"{what}: plane {name} {g.dtype} {g.shape} vs {w.shape}"
        if not np.array_equal(g, w):
            bad = np.argwhere(g != w)
            r, c = bad[0]
            raise AssertionError(f"{what}: plane {name} differs at {len(bad)} samples, first (row {r}, col {c}): "
                                 f"{g[r, c]} != {w[r, c]}")


def check_stream(path, backend: str) -> dict:
    """Every frame of the clip against `Stream.residual`; returns what the clip exercised."""
    seen = {"types": set(), "frames": 0, "blocks4": 0, "chroma4": 0, "blocks8": 0, "max_abs": 0, "intra16x16_dc": 0}
    with codec.open(path) as s:
        for i in range(len(s.frames)):
            c = s.coefficients(i)
            n4, n8 = len(c.positions4), len(c.positions8)
            data = torch.tensor(c.data, device=DEVICE)  # the one host-to-device copy (c.data is read-only)
            got = reconstruct(data, n4, n8, s.coded_width, s.coded_height, backend)
            want = s.residual(i)
            assert_planes_equal(got, (want.y, want.u, want.v), f"{path.name} frame {i} ({backend})")
            seen["frames"] += 1
            seen["types"].add(s.frames[i].type)
            seen["blocks4"] += n4
            seen["chroma4"] += int((c.positions4[:, 0] != 0).sum())
            seen["blocks8"] += n8
            coefficients = c.data[:16 * n4 + 64 * n8].astype(np.int32)
            seen["max_abs"] = max(seen["max_abs"], int(np.abs(coefficients).max(initial=0)))
            seen["intra16x16_dc"] += intra16x16_with_dc(s.macroblocks(i), c)
    return seen


def intra16x16_with_dc(mbs, c) -> int:
    """Intra macroblocks with luma 4x4 blocks but no coded luma 8x8 (cbp & 15 == 0): only an
    Intra16x16 macroblock has those (its DC transform's output, folded into the 4x4 blocks)."""
    luma = c.positions4[c.positions4[:, 0] == 0]
    mb_rows, mb_cols = luma[:, 2].astype(np.int64) // 16, luma[:, 1].astype(np.int64) // 16
    has_luma = np.zeros(mbs.mb_type.shape, bool)
    has_luma[mb_rows, mb_cols] = True
    return int((has_luma & (mbs.mb_type == 0) & ((mbs.cbp & 15) == 0)).sum())


@pytest.mark.parametrize("settings", CLIPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_cpu_residual(clip_factory, settings, backend):
    path = clip_factory(profile="high", **settings)
    seen = check_stream(path, backend)
    assert seen["frames"] == settings["frames"]
    assert seen["blocks4"] > 0 and seen["chroma4"] > 0
    assert seen["types"] == ({"I", "P", "B"} if settings["bframes"] else {"I", "P"} if settings.get("gop") != 1
                             else {"I"}), seen
    if settings["transform_8x8"] and settings.get("gop") != 1:
        assert seen["blocks8"] > 0, seen
    if not settings["transform_8x8"]:
        assert seen["blocks8"] == 0, seen
    if settings["crf"] <= 1:
        assert seen["max_abs"] >= 1000, seen  # large dequantised coefficients were exercised
    if settings.get("gop") == 1:  # all-intra clips at crf 36: Intra16x16 with only DC
        assert seen["intra16x16_dc"] > 0, seen


# ---------------------------------------------------------------------------------------------
# synthetic blocks


def extreme_coefficients(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """[n, size, size] int16 coefficient blocks, a different pattern per block: the whole int16
    range uniformly, all +-max, a checkerboard of +max/-min, a single extreme coefficient, values
    from {-32768, -1, 0, 1, 32767}, ordinary small values. Any int16 input is allowed: the int32
    intermediates stay below 2^21 (see vccv_gpu/kernels/residual/__init__.py)."""
    full = torch.randint(-32768, 32768, (n, size, size), generator=g, dtype=torch.int32)
    sign = torch.tensor([1, -1]).repeat(size // 2)
    checker = torch.where((sign[:, None] * sign[None, :]) > 0, 32767, -32768).to(torch.int32)
    edges = torch.tensor([-32768, -1, 0, 1, 32767], dtype=torch.int32)
    out = torch.empty(n, size, size, dtype=torch.int32)
    kinds = torch.randint(0, 7, (n,), generator=g)
    for b in range(n):
        kind = int(kinds[b])
        if kind == 0:
            out[b] = full[b]
        elif kind == 1:
            out[b] = 32767
        elif kind == 2:
            out[b] = -32768
        elif kind == 3:
            out[b] = checker if b % 2 else -checker.clamp(min=-32767)
        elif kind == 4:
            out[b] = 0
            out[b].view(-1)[int(torch.randint(0, size * size, (1,), generator=g))] = 32767 if b % 2 else -32768
        elif kind == 5:
            out[b] = edges[torch.randint(0, 5, (size, size), generator=g)]
        else:
            out[b] = torch.randint(-64, 64, (size, size), generator=g)  # ordinary residual sizes
    return out.to(torch.int16)


def synthetic_frame(width: int, height: int, seed: int, with8x8: bool = True):
    """A coefficient buffer of non-overlapping blocks at random places, in random order: each luma
    8x8 area holds nothing, one 8x8 block or some of its four 4x4 blocks; each chroma 4x4 area a
    block or nothing. Returns (data, n4, n8)."""
    g = torch.Generator().manual_seed(seed)
    pos4, pos8 = [], []
    for y in range(0, height, 8):
        for x in range(0, width, 8):
            choice = int(torch.randint(0, 3, (1,), generator=g))
            if choice == 1 and with8x8:
                pos8.append((0, x, y))
            elif choice >= 1:
                for dy in (0, 4):
                    for dx in (0, 4):
                        if float(torch.rand(1, generator=g)) < 0.7:
                            pos4.append((0, x + dx, y + dy))
    for plane in (1, 2):
        for y in range(0, height // 2, 4):
            for x in range(0, width // 2, 4):
                if float(torch.rand(1, generator=g)) < 0.6:
                    pos4.append((plane, x, y))
    p4 = torch.tensor(pos4, dtype=torch.int16).view(-1, 3)
    p8 = torch.tensor(pos8, dtype=torch.int16).view(-1, 3)
    p4 = p4[torch.randperm(len(p4), generator=g)]
    p8 = p8[torch.randperm(len(p8), generator=g)]
    c4 = extreme_coefficients(len(p4), 4, g)
    c8 = extreme_coefficients(len(p8), 8, g)
    data = torch.cat([c4.reshape(-1), c8.reshape(-1), p4.reshape(-1), p8.reshape(-1)])
    return data, len(p4), len(p8)


def _wrap16(v: int) -> int:
    return ((v + 32768) & 0xFFFF) - 32768  # static_cast<int16_t> (never wraps for int16 input)


def _scalar_butterfly4(x: list[int]) -> list[int]:
    e0, e1, e2, e3 = x[0] + x[2], x[0] - x[2], (x[1] >> 1) - x[3], x[1] + (x[3] >> 1)
    return [e0 + e3, e1 + e2, e1 - e2, e0 - e3]


def _scalar_butterfly8(x: list[int]) -> list[int]:
    e0 = x[0] + x[4]
    e1 = -x[3] + x[5] - x[7] - (x[7] >> 1)
    e2 = x[0] - x[4]
    e3 = x[1] + x[7] - x[3] - (x[3] >> 1)
    e4 = (x[2] >> 1) - x[6]
    e5 = -x[1] + x[7] + x[5] + (x[5] >> 1)
    e6 = x[2] + (x[6] >> 1)
    e7 = x[3] + x[5] + x[1] + (x[1] >> 1)
    f0, f1, f2, f3 = e0 + e6, e1 + (e7 >> 2), e2 + e4, e3 + (e5 >> 2)
    f4, f5, f6, f7 = e2 - e4, (e3 >> 2) - e5, e0 - e6, e7 - (e1 >> 2)
    return [f0 + f7, f2 + f5, f4 + f3, f6 + f1, f6 - f1, f4 - f3, f2 - f5, f0 - f7]


def scalar_block(block: list[int], size: int) -> list[int]:
    """One raster block through the scalar transcription: rows, then columns, then (h + 32) >> 6,
    in raster order (int32 overflow is checked rather than assumed away)."""
    butterfly = _scalar_butterfly4 if size == 4 else _scalar_butterfly8
    rows = [butterfly(block[i * size:(i + 1) * size]) for i in range(size)]
    cols = [butterfly([rows[i][j] for i in range(size)]) for j in range(size)]
    assert all(abs(h) < 2 ** 31 - 32 for col in cols for h in col)
    return [_wrap16((cols[j][i] + 32) >> 6) for i in range(size) for j in range(size)]


def scalar_residual(data: torch.Tensor, n4: int, n8: int, width: int, height: int):
    """csrc/residual_planes.cpp render_residual, transcribed sample by sample (Python ints: `>>` floors,
    as an arithmetic shift does)."""
    d = data.tolist()
    planes = [np.zeros((height, width), np.int16), np.zeros((height // 2, width // 2), np.int16),
              np.zeros((height // 2, width // 2), np.int16)]
    coeff, positions = 0, 16 * n4 + 64 * n8  # coeffs4 | coeffs8 | positions4 | positions8
    for size, count, pos_start in ((4, n4, positions), (8, n8, positions + 3 * n4)):
        for b in range(count):
            plane, x, y = d[pos_start + 3 * b: pos_start + 3 * b + 3]
            block = d[coeff + size * size * b: coeff + size * size * (b + 1)]
            r = scalar_block(block, size)
            planes[0 if size == 8 else plane][y:y + size, x:x + size] = np.array(r, np.int16).reshape(size, size)
        coeff += size * size * count
    return planes


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("size,seed", [(4, 0), (4, 1), (8, 2), (8, 3)])
def test_cpu_inverse_transform_matches_scalar(size, seed, portable):
    """csrc/transform.cpp's inverse transforms (the rows and columns passes several lanes at a
    time: in SSE2 registers, or as portable loops; a lone 8x8 DC filled in directly)
    against the scalar transcription, on extreme, ordinary and DC-only blocks."""
    import _h264_testing

    g = torch.Generator().manual_seed(seed)
    dc_only = [[dc] + [0] * (size * size - 1) for dc in (-32768, -33, -32, -31, -1, 0, 1, 31, 32, 33, 32767)]
    for block in extreme_coefficients(400, size, g).reshape(400, -1).tolist() + dc_only:
        assert _h264_testing.inverse_transform(block, portable) == scalar_block(block, size), block


@pytest.mark.parametrize("width,height,seed", [(16, 16, 0), (64, 48, 1), (160, 96, 2)])
def test_synthetic_extreme_coefficients(width, height, seed):
    data, n4, n8 = synthetic_frame(width, height, seed)
    want = scalar_residual(data, n4, n8, width, height)
    on_device = data.to(DEVICE)
    got_triton = reconstruct(on_device, n4, n8, width, height, "triton")
    got_reference = reconstruct(on_device, n4, n8, width, height, "reference")
    assert_planes_equal(got_triton, want, "triton vs scalar")
    assert_planes_equal(got_reference, want, "reference vs scalar")
    assert max(int(p.abs().max()) for p in got_triton) > 16000  # near the bound: |r| < 27900 for int16 input


def test_lane_groups_and_partial_programs():
    """More blocks than one program handles, counts not multiples of BLOCK4 / BLOCK8."""
    from vccv_gpu.kernels.residual.triton import BLOCK4, BLOCK8  # after TRITON_INTERPRET is set

    width, height = 256, 128
    data, n4, n8 = synthetic_frame(width, height, 7)
    assert n4 > BLOCK4 and n4 % BLOCK4
    assert n8 > BLOCK8 and n8 % BLOCK8
    on_device = data.to(DEVICE)
    assert_planes_equal(reconstruct(on_device, n4, n8, width, height, "triton"),
                        [p.cpu().numpy() for p in reconstruct(on_device, n4, n8, width, height, "reference")],
                        "triton vs reference")


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_one_kind(backend):
    width, height = 32, 16
    empty = torch.zeros(0, dtype=torch.int16, device=DEVICE)
    for plane in reconstruct(empty, 0, 0, width, height, backend):
        assert plane.device.type == torch.device(DEVICE).type and not plane.any()
    for with8x8 in (False, True):
        data, n4, n8 = synthetic_frame(width, height, 3, with8x8)
        if with8x8:  # keep only the 8x8 blocks
            data = torch.cat([data[16 * n4: 16 * n4 + 64 * n8], data[16 * n4 + 64 * n8 + 3 * n4:]])
            n4 = 0
        want = scalar_residual(data, n4, n8, width, height)
        assert_planes_equal(reconstruct(data.to(DEVICE), n4, n8, width, height, backend), want, f"8x8 only {with8x8}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_plane_blocks_are_dropped(backend):
    """Positions the parser never produces: no write out of bounds, the same result from both."""
    width, height = 32, 16
    pos4 = [(0, 28, 12), (0, 29, 0), (1, 12, 4), (2, 13, 0), (3, 0, 0), (-1, 0, 0), (1, 0, 5), (0, -4, 0), (2, 4, 4)]
    pos8 = [(0, 24, 8), (0, 25, 0), (0, 0, 9), (2, 8, 0)]  # the last: plane ignored, a luma block
    g = torch.Generator().manual_seed(5)
    c4 = torch.randint(-500, 500, (len(pos4), 16), generator=g, dtype=torch.int16)
    c8 = torch.randint(-500, 500, (len(pos8), 64), generator=g, dtype=torch.int16)
    data = torch.cat([c4.view(-1), c8.view(-1), torch.tensor(pos4, dtype=torch.int16).view(-1),
                      torch.tensor(pos8, dtype=torch.int16).view(-1)])
    y, u, v = reconstruct(data.to(DEVICE), len(pos4), len(pos8), width, height, backend)
    valid4, valid8 = [0, 2, 8], [0, 3]
    keep = torch.cat([c4[valid4].view(-1), c8[valid8].view(-1),
                      torch.tensor([pos4[i] for i in valid4], dtype=torch.int16).view(-1),
                      torch.tensor([pos8[i] for i in valid8], dtype=torch.int16).view(-1)])
    assert_planes_equal((y, u, v), scalar_residual(keep, len(valid4), len(valid8), width, height), "dropped blocks")


def test_bad_arguments():
    data = torch.zeros(3 + 16, dtype=torch.int16)
    with pytest.raises(ValueError, match="need"):
        reconstruct(data, 1, 1, 32, 16, "reference")
    with pytest.raises(ValueError, match="int16"):
        reconstruct(data.to(torch.int32), 1, 0, 32, 16, "reference")
    with pytest.raises(ValueError, match="multiples of 16"):
        reconstruct(data, 1, 0, 30, 16, "reference")
    with pytest.raises(ValueError, match="backend"):
        reconstruct(data, 1, 0, 32, 16, "cuda")


def test_auto_backend_and_numpy_input(clip_factory):
    with codec.open(clip_factory(size=(32, 32), frames=1)) as s:
        c = s.coefficients(0)
        y, u, v = reconstruct_residual(c.data, len(c.positions4), len(c.positions8), s.coded_width,
                                               s.coded_height)  # auto: the reference on CPU tensors
        want = s.residual(0)
        assert_planes_equal((y, u, v), (want.y, want.u, want.v), "auto backend, numpy input")


# ---------------------------------------------------------------------------------------------
# compiled for CUDA (no GPU needed): what the interpreter cannot show

COMPILE_SCRIPT = """
import subprocess
import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource
from vccv_gpu.kernels.residual import triton as residual_triton

common = {"data_ptr": "*i16", "out_ptr": "*i16", "n_blocks": "i32"}
sizes = {"width": "i32", "height": "i32", "luma_size": "i32", "chroma_size": "i32", "BLOCK": "constexpr"}
kernel4, kernel8 = residual_triton._residual4x4_kernel, residual_triton._residual8x8_kernel
for kernel, extra, block in ((kernel4, {"pos_start": "i32"}, residual_triton.BLOCK4),
                             (kernel8, {"pos_start": "i32", "coeff_start": "i32"}, residual_triton.BLOCK8)):
    source = ASTSource(fn=kernel, signature={**common, **extra, **sizes}, constexprs={"BLOCK": block})
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": block // 32})
    assert compiled.asm["cubin"]
    with open("kernel.ptx", "w") as f:
        f.write(compiled.asm["ptx"])
    ptxas = get_ptxas(90).path
    info = subprocess.run([ptxas, "-v", "--gpu-name=sm_90a", "kernel.ptx", "-o", "kernel.cubin"],
                          capture_output=True, text=True, check=True).stderr
    print(info)
    assert "0 bytes spill stores, 0 bytes spill loads" in info, info
"""


def test_kernels_compile_for_sm90_without_spills(tmp_path):
    """Both kernels compile (Triton's CUDA backend and its bundled ptxas) to sm_90 code that keeps
    every value in registers; needs no GPU. In a fresh process: here the kernels are interpreted."""
    import subprocess
    import sys

    pytest.importorskip("triton.backends.nvidia.compiler")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                          check=False, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# on CUDA at 1080p


@pytest.mark.gpu
@pytest.mark.parametrize("entropy,transform_8x8", [("cabac", True), ("cavlc", False)])
def test_gpu_1080p_matches_cpu_residual(clip_factory, entropy, transform_8x8):
    path = clip_factory(size=(1920, 1080), frames=4, entropy=entropy, profile="high", transform_8x8=transform_8x8,
                        bframes=1, crf=12, gop=3)
    for backend in ("triton", "reference"):
        seen = check_stream(path, backend)
        assert seen["frames"] == 4 and seen["blocks4"] > 0


@pytest.mark.gpu
def test_gpu_1080p_synthetic():
    width, height = 1920, 1088
    data, n4, n8 = synthetic_frame(width, height, 11)
    on_device = data.cuda()
    got = reconstruct(on_device, n4, n8, width, height, "triton")
    want = reconstruct(data, n4, n8, width, height, "reference")  # on the CPU
    assert all(p.is_cuda for p in got)
    assert_planes_equal(got, [p.numpy() for p in want], "CUDA triton vs CPU reference")
