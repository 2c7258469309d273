"""Speed of the RAE model's hot loop, in one run on one device, for five implementations:

  literal          Eq. 3-12 as written: every step recomputes everything, for every beam (eager)
  reference        per-clip constants computed once, per-step ops in plain PyTorch (eager)
  compiled         the reference under torch.compile (default mode: fused kernels)
  reduce-overhead  the reference under torch.compile(mode="reduce-overhead"): the same kernels,
                   each call replayed as a CUDA graph (no per-kernel launch cost); CUDA only:
                   elsewhere the table says it was skipped
  triton           per-clip constants once, the fused Triton SAM and TGM kernels

and three measurements: the encoder step (h_{t-1} -> visual feature: SAM, TGM, W_GR, linear),
the whole decoding step (encoder step, LSTM, vocabulary log-softmax) for clips x beam rows, and a
training step (teacher-forced forward over a caption, loss and backward) for `clips` clips.
Reported: median milliseconds, peak memory above what was resident before (CUDA only) and the
fused kernels' speedup over each. Goals on the decoding step: fused >= 3x the eager reference and
>= 1.5x its torch.compile, in either mode.

    python benchmarks/kernels.py                         # paper shapes on CUDA
    python benchmarks/kernels.py --device cpu --smoke    # small shapes on the CPU

On the CPU the Triton kernels run in Triton's interpreter: that checks the code path, its timings
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMPLEMENTATIONS = ("literal", "reference", "compiled", "reduce-overhead", "triton")
COMPILE_MODES = {"compiled": "default", "reduce-overhead": "reduce-overhead"}  # torch.compile's mode
PAPER = {"clips": 64, "beam": 5, "frames": 20, "grid": 7, "d_i": 2048, "d_r": 512, "hidden": 512, "embed": 500,
         "vocab": 10_000, "caption_len": 20}
SMOKE = {"clips": 2, "beam": 3, "frames": 4, "grid": 3, "d_i": 64, "d_r": 32, "hidden": 32, "embed": 16, "vocab": 50,
         "caption_len": 5}


@dataclass
class Result:
    benchmark: str
    implementation: str
    ms: float
    peak_mib: float | None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--smoke", action="store_true", help="small shapes (a quick check that everything runs)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                        help="floating-point type of the weights and activations (default fp32)")
    for name, value in PAPER.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                            help=f"default {value} ({SMOKE[name]} with --smoke)")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per measurement (default 20, smoke 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 3, smoke 2)")
    parser.add_argument("--skip", nargs="*", default=[], choices=IMPLEMENTATIONS, help="implementations to leave out")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    defaults = SMOKE if args.smoke else PAPER
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.repeat = args.repeat or (3 if args.smoke else 20)
    args.warmup = args.warmup or (2 if args.smoke else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel is compiled
    from vccv_gpu.model import VCCV, VCCVConfig

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    config = VCCVConfig(vocab_size=args.vocab, d_i=args.d_i, d_r=args.d_r, grid=(args.grid, args.grid),
                        n_frames=args.frames, embed=args.embed, hidden=args.hidden, variant="rae")
    torch.manual_seed(0)
    model = VCCV(config).to(device, dtype)
    rows = args.clips * args.beam
    shape = (args.clips, args.frames, args.grid, args.grid)
    v_i = torch.randn(*shape, args.d_i, device=device, dtype=dtype)
    a_r = torch.randn(*shape, args.d_r, device=device, dtype=dtype)
    tokens = torch.randint(4, args.vocab, (args.clips, args.caption_len), device=device)
    prev_tokens = torch.randint(4, args.vocab, (rows,), device=device)
    state = (torch.randn(rows, args.hidden, device=device, dtype=dtype),
             torch.randn(rows, args.hidden, device=device, dtype=dtype))

    print(describe(args, device, dtype, rows))
    inputs = {"v_i": v_i, "a_r": a_r, "tokens": tokens, "prev_tokens": prev_tokens, "state": state}
    results: list[Result] = []
    skipped: dict[str, str] = {}
    for implementation in IMPLEMENTATIONS:
        if implementation in args.skip:
            continue
        if implementation == "reduce-overhead" and device.type != "cuda":
            skipped[implementation] = "torch.compile's CUDA graphs need CUDA"
            continue
        results += measure_implementation(implementation, model, inputs, device, args)
        print(f"  measured {implementation}", file=sys.stderr)
    print(table(results, device, skipped))
    if args.json:
        args.json.write_text(json.dumps({"device": device_name(device), "dtype": args.dtype, "shapes": {
            k: getattr(args, k) for k in PAPER}, "results": [r.__dict__ for r in results], "skipped": skipped},
            indent=2))
    return 0


def measure_implementation(implementation: str, model: Any, inputs: dict[str, Any], device,
                           args: argparse.Namespace) -> list[Result]:
    """The encoder step, the decoding step and the training step of one implementation."""
    import torch

    from vccv_gpu.model import caption_loss

    model.backend = "reference" if implementation in COMPILE_MODES else implementation
    wrap = compiler(COMPILE_MODES.get(implementation))
    v_i, a_r, tokens, prev_tokens, state = (inputs[k] for k in ("v_i", "a_r", "tokens", "prev_tokens", "state"))
    results = []
    with torch.no_grad():
        model.eval()
        constants = model.precompute(v_i, a_r)  # once per clip, outside the timed steps

        def encoder_step() -> torch.Tensor:
            return model.encoder.step(state[0], constants, args.beam).visual

        def decoding_step() -> torch.Tensor:
            logits = model.decode_step(prev_tokens, state, constants, args.beam)[0]
            return torch.log_softmax(logits.float(), -1)

        results.append(Result("encoder step", implementation, *measure(wrap(encoder_step), device, args)))
        results.append(Result("decoding step", implementation, *measure(wrap(decoding_step), device, args)))
    model.train()
    forward = wrap(model)

    def training_step() -> None:
        model.zero_grad(set_to_none=True)
        caption_loss(forward(v_i, a_r, tokens), tokens).backward()

    results.append(Result("training step", implementation, *measure(training_step, device, args)))
    return results


def compiler(mode: str | None) -> Callable[[Callable], Callable]:
    """fn -> fn under torch.compile in `mode` (None: fn itself)."""
    import torch

    def wrap(fn: Callable) -> Callable:
        if mode is None:
            return fn
        compiled = torch.compile(fn, mode=mode)
        if mode != "reduce-overhead":
            return compiled

        def step(*args: Any, **kwargs: Any) -> Any:
            # Each call is a new step: the graphs may overwrite the last call's outputs, which no
            # one keeps.
            torch.compiler.cudagraph_mark_step_begin()
            return compiled(*args, **kwargs)

        return step

    return wrap


def measure(fn: Callable[[], object], device, args: argparse.Namespace) -> tuple[float, float | None]:
    """Median wall time of one synchronised call, and the peak memory above the resident."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        fn()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        resident = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    peak = (torch.cuda.max_memory_allocated(device) - resident) / 2**20 if device.type == "cuda" else None
    return statistics.median(times), peak


def device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def describe(args: argparse.Namespace, device, dtype, rows: int) -> str:
    return (f"device {device_name(device)} ({device.type}), {str(dtype).removeprefix('torch.')}; "
            f"{args.clips} clips x beam {args.beam} = {rows} decoding rows, N {args.frames}, "
            f"{args.grid}x{args.grid}, D_I {args.d_i}, D_r {args.d_r}, hidden {args.hidden}, embed {args.embed}, "
            f"vocab {args.vocab}; training: {args.clips} clips x {args.caption_len} tokens; "
            f"median of {args.repeat} after {args.warmup} warm-up")


def table(results: list[Result], device, skipped: dict[str, str]) -> str:
    """One block per benchmark; "fused speedup" = the row's ms / the Triton row's ms; then a line
    per skipped implementation (why) and the goals."""
    benchmarks = list(dict.fromkeys(r.benchmark for r in results))
    fused = {r.benchmark: r.ms for r in results if r.implementation == "triton"}
    lines = [f"{'benchmark':<15}{'implementation':<16}{'ms':>11}{'peak MiB':>11}{'fused speedup':>15}"]
    for benchmark in benchmarks:
        for r in (r for r in results if r.benchmark == benchmark):
            peak = "n/a" if r.peak_mib is None else f"{r.peak_mib:.0f}"
            speedup = f"{r.ms / fused[benchmark]:.2f}x" if benchmark in fused else "n/a"
            lines.append(f"{r.benchmark:<15}{r.implementation:<16}{r.ms:>11.3f}{peak:>11}{speedup:>15}")
    lines += [f"skipped: {implementation} ({why})" for implementation, why in skipped.items()]
    if device.type != "cuda":
        lines.append("note: no CUDA: the Triton kernels ran in Triton's CPU interpreter; their timings mean "
                     "nothing here and the goals are not judged")
        return "\n".join(lines)
    by_name = {(r.benchmark, r.implementation): r.ms for r in results}
    for baseline, goal in (("reference", 3.0), ("compiled", 1.5), ("reduce-overhead", 1.5)):
        key = ("decoding step", baseline)
        if key in by_name and "decoding step" in fused:
            ratio = by_name[key] / fused["decoding step"]
            verdict = "met" if ratio >= goal else "NOT met"
            lines.append(f"goal: fused >= {goal}x {baseline} on the decoding step: {ratio:.2f}x ({verdict})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
