"""Fused Triton kernels (SAM, TGM) against their plain-PyTorch references (the model's
`sam_reference`, `tgm_reference`), forward and every input gradient, over odd and edge shapes, 1
and many clips and beams, fp32 and bf16, with frame masks.

Tolerances: fp32 compares with fp32 (atol 1e-5, rtol 1e-5: only summation order and the exp-based
tanh differ). bf16 kernels (fp32 math, bf16 in and out) compare with the fp32 reference on the same
bf16-rounded inputs (atol 1e-2, rtol 1.6e-2: one bf16 rounding of each output, about 2^-8 relative).

Without CUDA the kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1, set here; the
kernel modules are imported later, at first use, and Triton reads it then); the `gpu` tests repeat
the comparison at the paper's full shapes.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

from vccv_gpu.kernels import backend
from vccv_gpu.model.sam import sam_reference, spatial_attention
from vccv_gpu.model.tgm import temporal_gate, tgm_reference

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCE = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.bfloat16: {"atol": 1e-2, "rtol": 1.6e-2}}
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16")]

# clips, beams, frames N, positions H*W, D_r, D_I
SHAPES = [
    pytest.param(1, 1, 1, 1, 1, 1, id="all-ones"),
    pytest.param(1, 1, 5, 9, 24, 40, id="one-clip-3x3"),
    pytest.param(3, 5, 7, 49, 40, 72, id="beam5-7x7"),
    pytest.param(17, 1, 3, 10, 33, 130, id="many-clips"),
    pytest.param(2, 3, 32, 64, 70, 20, id="max-frames-positions"),
    pytest.param(4, 2, 20, 49, 130, 260, id="several-channel-blocks"),
]
PAPER_SHAPES = [
    pytest.param(64, 5, 20, 49, 512, 2048, id="decode-64x5"),
    pytest.param(64, 1, 20, 49, 512, 2048, id="train-64"),
    pytest.param(8, 1, 32, 64, 1024, 2048, id="limits"),
]


def sam_triton(*args):
    """The fused SAM, reached through the public dispatch."""
    return spatial_attention(*args, backend="triton")


def tgm_triton(*args):
    """The fused TGM, reached through the public dispatch."""
    return temporal_gate(*args, backend="triton")


def frame_mask(clips: int, frames: int, g: torch.Generator) -> torch.Tensor:
    mask = torch.rand(clips, frames, generator=g) > 0.3
    mask[torch.arange(clips), torch.randint(frames, (clips,), generator=g)] = True  # >= 1 valid frame
    return mask.to(DEVICE)


def randn(*shape: int, g: torch.Generator, scale: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (torch.randn(*shape, generator=g) * scale).to(DEVICE, dtype)


def check(kernel, reference, inputs: list[torch.Tensor], args: tuple, dtype: torch.dtype, seed: int) -> None:
    """Forward outputs and the gradient of every input, through every output."""
    leaves = [x.detach().requires_grad_() for x in inputs]
    outputs = kernel(*leaves, *args)
    g = torch.Generator().manual_seed(seed + 1)
    grads_out = [randn(*o.shape, g=g, dtype=dtype) for o in outputs]
    grads = torch.autograd.grad(outputs, leaves, grads_out)

    ref_leaves = [x.detach().float().requires_grad_() for x in inputs]
    expected = reference(*ref_leaves, *args)
    expected_grads = torch.autograd.grad(expected, ref_leaves, [go.float() for go in grads_out])

    tolerance = TOLERANCE[dtype]
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert got.dtype == dtype and got.shape == want.shape
        torch.testing.assert_close(got.float(), want, **tolerance, msg=lambda m, i=i: f"output {i}: {m}")
    for i, (got, want) in enumerate(zip(grads, expected_grads)):
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), want, **tolerance, msg=lambda m, i=i: f"grad of input {i}: {m}")


def sam_inputs(clips, beams, frames, positions, dim, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    rows = clips * beams
    query = randn(rows, positions + 3, g=g, scale=2.0, dtype=dtype)  # W_t h as a slice of a wider GEMM
    step_term = query[:, 1:positions + 1]
    clip_term = randn(clips, frames, positions, g=g, scale=2.0, dtype=dtype)
    v_conv = randn(clips, frames, positions, dim, g=g, dtype=dtype)
    return [step_term, clip_term, v_conv], frame_mask(clips, frames, g)


def tgm_inputs(clips, beams, frames, dim_r, dim_i, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    rows = clips * beams
    gate_step = randn(rows, 5, g=g, scale=2.0, dtype=dtype)[:, 4]  # one column of the step's GEMM
    gate_frame = randn(clips, frames, g=g, scale=2.0, dtype=dtype)
    f_r = randn(rows, frames, dim_r, g=g, dtype=dtype)
    fallback = randn(clips, frames, dim_i, g=g, dtype=dtype)
    return [gate_step, gate_frame, f_r, fallback], frame_mask(clips, frames, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clips,beams,frames,positions,dim_r,dim_i", SHAPES)
def test_sam_matches_reference(clips, beams, frames, positions, dim_r, dim_i, dtype) -> None:
    inputs, mask = sam_inputs(clips, beams, frames, positions, dim_r, dtype, seed=clips * 100 + frames)
    check(sam_triton, sam_reference, inputs, (mask, beams), dtype, seed=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clips,beams,frames,positions,dim_r,dim_i", SHAPES)
def test_tgm_matches_reference(clips, beams, frames, positions, dim_r, dim_i, dtype) -> None:
    inputs, mask = tgm_inputs(clips, beams, frames, dim_r, dim_i, dtype, seed=clips * 100 + frames)
    check(tgm_triton, tgm_reference, inputs, (mask, beams), dtype, seed=2)


@pytest.mark.parametrize("op", ["sam", "tgm"])
def test_no_mask_means_all_frames(op: str) -> None:
    if op == "sam":
        inputs, _ = sam_inputs(2, 3, 4, 9, 20, torch.float32, seed=5)
        check(sam_triton, sam_reference, inputs, (None, 3), torch.float32, seed=3)
    else:
        inputs, _ = tgm_inputs(2, 3, 4, 20, 30, torch.float32, seed=5)
        check(tgm_triton, tgm_reference, inputs, (None, 3), torch.float32, seed=3)


def test_masked_frames_are_never_read() -> None:
    """NaN in the features of invalid frames does not reach any output or gradient."""
    inputs, mask = sam_inputs(3, 2, 6, 9, 20, torch.float32, seed=7)
    inputs[2] = torch.where(mask[:, :, None, None], inputs[2], float("nan"))
    step, clip, v_conv = (x.detach().requires_grad_() for x in inputs)
    pooled, attention = sam_triton(step, clip, v_conv, mask, 2)
    (pooled.sum() + attention.sum()).backward()
    assert all(torch.isfinite(t).all() for t in (pooled, attention, step.grad, clip.grad))
    inputs, mask = tgm_inputs(3, 2, 6, 20, 30, torch.float32, seed=7)
    for i in (2, 3):
        inputs[i] = torch.where(mask.repeat_interleave(2 if i == 2 else 1, 0)[:, :, None], inputs[i], float("nan"))
    leaves = [x.detach().requires_grad_() for x in inputs]
    outputs = tgm_triton(*leaves, mask, 2)
    sum(o.sum() for o in outputs).backward()
    assert all(torch.isfinite(t).all() for t in (*outputs, leaves[0].grad, leaves[1].grad))


def test_limits_are_enforced() -> None:
    inputs, mask = sam_inputs(1, 1, 2, 65, 8, torch.float32, seed=0)
    with pytest.raises(ValueError, match="H\\*W <= 64"):
        sam_triton(*inputs, mask, 1)
    inputs, mask = tgm_inputs(1, 1, 33, 8, 8, torch.float32, seed=0)
    with pytest.raises(ValueError, match="N <= 32"):
        tgm_triton(*inputs, mask, 1)
    inputs, mask = sam_inputs(2, 1, 2, 4, 8, torch.float32, seed=0)
    with pytest.raises(ValueError, match="disagree"):
        sam_triton(*inputs, mask, 2)


def test_backend_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert backend.resolve_backend(None, "cpu") == "reference"
    assert backend.resolve_backend("reference", "cuda") == "reference"
    assert backend.resolve_backend("literal", "cuda") == "literal"
    monkeypatch.setenv(backend.ENV_VAR, "triton")
    assert backend.resolve_backend(None, DEVICE) == "triton"
    assert backend.resolve_backend("reference", DEVICE) == "reference"  # the argument wins
    monkeypatch.setenv(backend.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="backend"):
        backend.resolve_backend(None, "cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        backend.resolve_backend("triton", "cpu")


def test_dispatch_reaches_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """backend="triton" runs the Triton functions, "reference" and "literal" do not."""
    sam_triton(*sam_inputs(1, 1, 2, 4, 8, torch.float32, seed=0)[0])  # imports the kernel modules
    tgm_triton(*tgm_inputs(1, 1, 2, 4, 8, torch.float32, seed=0)[0])
    calls = []
    for module, name in (("vccv_gpu.kernels.sam", "sam_triton"), ("vccv_gpu.kernels.tgm", "tgm_triton")):
        monkeypatch.setattr(sys.modules[module], name, lambda *args, name=name: calls.append(name))
    sam_triton(*sam_inputs(1, 1, 2, 4, 8, torch.float32, seed=0)[0])
    tgm_triton(*tgm_inputs(1, 1, 2, 4, 8, torch.float32, seed=0)[0])
    assert calls == ["sam_triton", "tgm_triton"]
    for name in ("reference", "literal"):
        spatial_attention(*sam_inputs(1, 1, 2, 4, 8, torch.float32, seed=0)[0], backend=name)
        temporal_gate(*tgm_inputs(1, 1, 2, 4, 8, torch.float32, seed=0)[0], backend=name)
    assert calls == ["sam_triton", "tgm_triton"]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clips,beams,frames,positions,dim_r,dim_i", PAPER_SHAPES)
def test_kernels_match_reference_at_paper_shapes(clips, beams, frames, positions, dim_r, dim_i, dtype) -> None:
    inputs, mask = sam_inputs(clips, beams, frames, positions, dim_r, dtype, seed=11)
    check(sam_triton, sam_reference, inputs, (mask, beams), dtype, seed=12)
    inputs, mask = tgm_inputs(clips, beams, frames, dim_r, dim_i, dtype, seed=13)
    check(tgm_triton, tgm_reference, inputs, (mask, beams), dtype, seed=14)
