"""The Ray engine against the plain engine, and the per-stage rates that size a cluster, in one run.

    python benchmarks/ray_engine.py [--sizes 1280x720] [--seconds 10] [--copies 4] [--checkpoint RUN]
                                    [--device cpu] [--json results.json]

On the same generated clips (GOP 12 without B-frames and GOP 250 with 3 B-frames per size, each
listed --copies times) and the same checkpoint (default: the bundled demo model):
  plain       `caption --engine plain` (ClipLoader threads + the model on --device);
  ray sN      `caption --engine ray --sampling-workers N` (N = 1, 2) with one model worker, and its
              overhead against plain (goal <= 10 %).
Each is run over n and 2n clips (--copies and twice as many copies of each clip): clips/s over 2n,
the steady rate (n / the extra time of the 2n run: what a corpus sees) and the fixed cost per job
(start-up, model loading, actors' start). Ray's own start-up is timed apart;
  stages      sampling alone on one core (`sample_clip` in one thread, per GOP kind: clips/s per
              core) and the model alone (backbones + beam search on sampled tensors, --batch clips
              per batch, on --device: clips/s).
From the stage rates: CPU cores of sampling per model worker = model rate / sampling rate per
core, per GOP kind. Every caption run writes into a fresh --out file in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frontend import generate

from vccv_gpu import caption, ray_engine
from vccv_gpu.checkpoint import load_checkpoint
from vccv_gpu.codec.loader import ClipLoader
from vccv_gpu.codec.sample import sample_clip


def run_caption(args: list[str]) -> float:
    """Seconds of one in-process `caption` run (its stderr swallowed); fails loudly on errors."""
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err):
        status = caption.main(args)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"error: caption {' '.join(args)} exited {status}:\n{err.getvalue()[-2000:]}")
    return seconds


def sampling_rate(clips: list[Path], config: Any) -> float:
    """Clips/s of `sample_clip` on one core: the process pinned to core 0 meanwhile."""
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        start = time.perf_counter()
        for clip in clips:
            sample_clip(clip, num_segments=config.num_segments, size=config.size, residual=config.residual_mode,
                        keep_aspect=config.keep_aspect, device="cpu")
        return len(clips) / (time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, cores)


def model_rate(clips: list[Path], checkpoint: Any, device: torch.device, batch: int, beam: int) -> float:
    """Clips/s of backbones + beam search alone, on tensors already in device memory."""
    config = checkpoint.backbones.config
    batches = list(ClipLoader(clips, batch_size=batch, num_segments=config.num_segments, size=config.size,
                              device=device, workers=2, residual=config.residual_mode, progress=False,
                              keep_aspect=config.keep_aspect))
    checkpoint.caption(batches[0].iframes, batches[0].residuals, beam=beam)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in batches:
        checkpoint.caption(b.iframes, b.residuals, beam=beam)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1280x720", help="comma-separated WxH of the generated clips")
    parser.add_argument("--seconds", type=int, default=10, help="length of each generated clip (25 fps)")
    parser.add_argument("--copies", type=int, default=4, help="times each generated clip is listed")
    parser.add_argument("--checkpoint", default=None, help="checkpoint (default: the bundled demo model)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs")
    parser.add_argument("--batch", type=int, default=8, help="clips per model batch")
    parser.add_argument("--beam", type=int, default=5, help="beam size")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    checkpoint = load_checkpoint(args.checkpoint, device=args.device)
    config = checkpoint.backbones.config
    gpus = 1 if args.device == "cuda" else 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = generate(root, args.sizes.split(","), args.seconds)
        small, large = root / "small", root / "large"  # --copies and twice as many copies of each clip
        for folder, copies in ((small, args.copies), (large, 2 * args.copies)):
            folder.mkdir()
            for k in range(copies):  # distinct files: caption resolves links and keeps one line per path
                for clip in clips:
                    try:
                        os.link(clip, folder / f"{k}-{clip.name}")
                    except OSError:
                        (folder / f"{k}-{clip.name}").write_bytes(clip.read_bytes())
        n = len(clips) * args.copies
        options = ["--batch", str(args.batch), "--beam", str(args.beam)]
        if args.checkpoint:
            options += ["--checkpoint", args.checkpoint]

        def rates(name: str, engine: list[str]) -> dict[str, float]:
            """Clips/s over 2n clips, and in steady state: n more clips / the extra time they took
            (what a corpus sees; the difference is the job's fixed cost: start-up, model loading)."""
            t_small = run_caption([str(small), *options, "--out", str(root / f"{name}-small.jsonl"), *engine])
            t_large = run_caption([str(large), *options, "--out", str(root / f"{name}-large.jsonl"), *engine])
            return {"clips_per_s": 2 * n / t_large, "steady_clips_per_s": n / max(t_large - t_small, 1e-9),
                    "fixed_s": 2 * t_small - t_large}

        print(f"{n} and {2 * n} clips ({', '.join(c.name for c in clips)}), model on {args.device}, "
              f"{os.cpu_count()} cores", file=sys.stderr)
        run_caption([str(small), *options, "--out", str(root / "warm.jsonl"), "--device", args.device])  # caches
        results: dict[str, Any] = {"clips": [n, 2 * n], "device": args.device, "cores": os.cpu_count(),
                                   "plain": rates("plain", ["--device", args.device])}
        start = time.perf_counter()
        ray_engine.connect(None, cpus=3)
        results["ray_startup_s"] = time.perf_counter() - start
        for workers in (1, 2):
            results[f"ray_s{workers}"] = rates(f"ray{workers}", [
                "--engine", "ray", "--sampling-workers", str(workers), "--model-workers", "1",
                "--gpus-per-model-worker", str(gpus)])

        by_gop = {}
        for kind in ("gop12", "gop250"):
            chosen = [c for c in clips if c.name.startswith(kind)]
            by_gop[kind] = sampling_rate(chosen * args.copies, config)
        model = model_rate(sorted(large.iterdir()), checkpoint, torch.device(args.device), args.batch, args.beam)
        results.update({"sampling_clips_per_s_per_core": by_gop, "model_clips_per_s": model,
                        "cores_per_model_worker": {k: model / v for k, v in by_gop.items()}})

    plain = results["plain"]
    print(f"\n{'':28s} {'clips/s':>8s} {'steady':>8s} {'fixed s':>8s}   overhead vs plain (steady)")
    for name, label in (("plain", "plain engine"), ("ray_s1", "ray, 1 sampling worker"),
                        ("ray_s2", "ray, 2 sampling workers")):
        r = results[name]
        slower = plain["steady_clips_per_s"] / r["steady_clips_per_s"] - 1
        overhead = "" if name == "plain" else f"{100 * slower:+.1f} %"
        print(f"{label:28s} {r['clips_per_s']:8.2f} {r['steady_clips_per_s']:8.2f} {r['fixed_s']:8.1f}   {overhead}")
    print(f"Ray start-up (once per job, not in the rows above): {results['ray_startup_s']:.1f} s")
    for kind, rate in by_gop.items():
        print(f"sampling alone, {kind:6s}: {rate:7.2f} clips/s per core -> {model / rate:5.1f} cores per model worker")
    print(f"model alone ({args.device}): {model:7.2f} clips/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
