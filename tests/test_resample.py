"""codec.resample: the bilinear taps against torch's interpolate, and the extension's loops
(csrc/resample.cpp) bit-exact against the torch reference beside them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vccv_gpu import _h264
from vccv_gpu.codec.colour import residual_to_rgb, rgb_matrix, swscale_coefficients, swscale_rgb, upsample_chroma
from vccv_gpu.codec.resample import (
    axis_taps,
    frame_from_planes,
    frame_from_rgb,
    output_taps,
    residual_from_planes,
    resize,
)

# (height, width, size, keep_aspect): down- and up-scaling, odd sizes, crops on either axis
SHAPES = [
    (720, 1280, 224, False),
    (1080, 1920, 224, True),
    (96, 160, 64, False),
    (88, 152, 300, True),
    (42, 74, 32, False),
    (160, 96, 48, True),
    (5, 7, 3, False),
]


def planes(height: int, width: int, seed: int, low: int, high: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    chroma = ((height + 1) // 2, (width + 1) // 2)
    return (torch.randint(low, high, (height, width), generator=g, dtype=dtype),
            torch.randint(low, high, chroma, generator=g, dtype=dtype),
            torch.randint(low, high, chroma, generator=g, dtype=dtype))


@pytest.mark.parametrize("n_in,n_out", [(720, 224), (1080, 224), (1920, 398), (50, 224), (224, 224), (3, 1),
                                        (1, 5), (160, 48)])
def test_taps_are_torchs_bilinear(n_in: int, n_out: int) -> None:
    t = axis_taps(n_in, n_out)
    assert t.i0.dtype == torch.int64 and t.w0.dtype == torch.float32
    assert int(t.i0.min()) >= 0 and int(t.i1.max()) <= n_in - 1 and bool((t.i1 - t.i0 <= 1).all())
    # interpolating an axis that holds its own indices gives each output's source position
    positions = torch.arange(n_in, dtype=torch.float32)[None, None, None]
    want = F.interpolate(positions, size=(1, n_out), mode="bilinear", align_corners=False)[0, 0, 0]
    got = t.i0.float() * t.w0 + t.i1.float() * t.w1
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("height,width,size,keep_aspect", SHAPES)
def test_resize_is_torchs_interpolate(height: int, width: int, size: int, keep_aspect: bool) -> None:
    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0)) * 60
    if keep_aspect:
        short = min(height, width)
        new = (size if height == short else max(size, round(height * size / short)),
               size if width == short else max(size, round(width * size / short)))
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
    else:
        new, top, left = (size, size), 0, 0
    want = F.interpolate(x, size=new, mode="bilinear", align_corners=False)[..., top:top + size, left:left + size]
    got = resize(x, size, keep_aspect)
    assert got.shape == (2, 3, size, size) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("height,width,size,keep_aspect", SHAPES)
def test_frame_loops_are_bit_exact(height: int, width: int, size: int, keep_aspect: bool) -> None:
    """Extension loop == torch reference == the YUV-plane path (GPU) on swscale's arithmetic."""
    y, u, v = planes(height, width, 1, 0, 256, torch.uint8)
    for mc, full in ((1, False), (2, True), (9, False)):
        rgb = swscale_rgb(y, upsample_chroma(u, height, width), upsample_chroma(v, height, width),
                          swscale_coefficients(mc, full)).permute(1, 2, 0).contiguous()
        native = frame_from_rgb(rgb, size, keep_aspect)
        reference = frame_from_rgb(rgb, size, keep_aspect, reference=True)
        assert native.shape == (3, size, size) and native.dtype == torch.uint8
        assert torch.equal(native, reference), (mc, full)
        assert torch.equal(frame_from_planes(y, u, v, mc, full, size, keep_aspect), native), (mc, full)
        # strided rows (PyAV pads its lines): the same
        padded = torch.zeros(height, width + 5, 3, dtype=torch.uint8)
        padded[:, :width] = rgb
        assert torch.equal(frame_from_rgb(padded[:, :width], size, keep_aspect), native)


def test_frame_rounding_is_half_to_even() -> None:
    """A 2-pixel row resized to 1 is the mean: x.5 rounds to even, as torch.round does."""
    rgb = torch.tensor([[[0, 1, 2], [1, 2, 5]]], dtype=torch.uint8)  # means 0.5, 1.5, 3.5
    rows, cols = axis_taps(1, 1), axis_taps(2, 1)
    small = _h264.resample_rgb(rgb.numpy(), tuple(t.numpy() for t in (rows.i0, rows.i1, rows.w0, rows.w1)),
                               tuple(t.numpy() for t in (cols.i0, cols.i1, cols.w0, cols.w1)))
    assert small.reshape(3).tolist() == [0, 2, 4]


@pytest.mark.parametrize("height,width,size,keep_aspect", SHAPES)
def test_residual_loops_are_bit_exact(height: int, width: int, size: int, keep_aspect: bool) -> None:
    coded_h, coded_w = height + height % 2 + 2, width + width % 2 + 4  # coded size: cropped at right/bottom
    y, u, v = planes(coded_h, coded_w, 2, -400, 400, torch.int32)
    for mc, full in ((1, False), (2, True), (7, False), (4, True)):
        m = rgb_matrix(mc, full)
        native = residual_from_planes(y, u, v, m, height, width, size, keep_aspect)
        reference = residual_from_planes(y, u, v, m, height, width, size, keep_aspect, reference=True)
        assert native.shape == (3, size, size) and native.dtype == torch.float32
        assert torch.equal(native, reference), (mc, full)
        # int16 planes (the parser's) give the same
        assert torch.equal(residual_from_planes(*(p.to(torch.int16) for p in (y, u, v)), m, height, width, size,
                                                keep_aspect), native)
        # = converting at full size, then resizing (both linear), within float32 rounding
        full_size = resize(residual_to_rgb(y, u, v, m, height=height, width=width), size, keep_aspect)
        torch.testing.assert_close(native, full_size, rtol=1e-5, atol=2e-3)


def test_loops_reject_bad_input() -> None:
    rows, cols = output_taps(8, 8, 4, False)
    r, c = (tuple(t.numpy() for t in (a.i0, a.i1, a.w0, a.w1)) for a in (rows, cols))
    rgb = torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()
    with pytest.raises(ValueError, match="rgb"):
        _h264.resample_rgb(rgb[..., :2], r, c)
    with pytest.raises(ValueError, match="rgb"):
        _h264.resample_rgb(rgb[:, ::2], r, c)
    with pytest.raises(ValueError, match="outside"):
        _h264.resample_rgb(rgb[:2], r, c)  # taps read rows up to 7
    bad = (r[0] + 100, r[1], r[2], r[3])
    with pytest.raises(ValueError, match="outside"):
        _h264.resample_rgb(rgb, bad, c)
    with pytest.raises(ValueError, match="one length"):
        _h264.resample_rgb(rgb, (r[0][:2], r[1], r[2], r[3]), c)
    plane = torch.zeros(8, 8, dtype=torch.int32).numpy()
    half = torch.zeros(2, 2, dtype=torch.int32).numpy()  # chroma too small for the taps
    matrix = rgb_matrix(1, False)
    with pytest.raises(ValueError, match="outside"):
        _h264.resample_residual(plane, half, half, r, c, matrix)
    with pytest.raises(ValueError, match="matrix"):
        _h264.resample_residual(plane, plane[:4, :4], plane[:4, :4], r, c, matrix[:2])
