"""Captioning throughput, file -> caption, against its limits and today's pipelines, in one run.

    python benchmarks/throughput.py --device cuda --out bench/        # generated 10-s 720p clips
    python benchmarks/throughput.py --device cpu --sizes 640x360 --seconds 4 --batch 2 --threads 1
    python benchmarks/throughput.py --videos clips/ --checkpoint RUN --batch 16 --device cuda

Clips per second, on the same clips with the same model and device:
  end to end       `caption_videos`: ClipLoader threads sample clips (on CUDA through the GPU front
                   end: NVDEC, device residuals) while the backbones and beam search of the batch
                   before run
  stages, alone    per clip: demux + parse (`codec.open`), residual parse (entropy decoding),
                   frame decode (libavcodec, RGB, resize), residual reconstruction (C++ render,
                   RGB, resize; on CUDA also the Triton kernel that the GPU front end uses);
                   per batch, on tensors in device memory: backbones, RAE + beam search
  (c) model only   backbones + RAE + beam search on sampled tensors in device memory
  (d) decode only  libavcodec decoding just the frames the policy needs (frontend.py's bound),
                   with as many decoders per clip as sample_clip uses (decoder_workers)
  (a) naive        every frame decoded to RGB + frame differences (frontend.py), then the model
  (s) smart        a seek to each needed GOP's keyframe, decoding on to the needed frames and the
                   next ones, only those converted (frontend.py), then the model; on CUDA with
                   PyNvVideoCodec also "(s) smart (NVDEC)": a warm SimpleDecoder seek-decoding each
                   needed frame and the next (frontend.py), the GPU ratio's s
(a) and (s) decode with the same cores per clip as sample_clip (frontend.py's naive* and smart*);
(d), (a), (s) run --workers clips at a time; (a) and (s) in end to end's ClipLoader and model
loop, given the policy's frame indices for free. Ratios: end to end / min(c, d) (goal >= 0.8),
end to end / s (goal >= 2 at GOP 12, >= 1.3 at GOP 250), end to end / a.

Model: --checkpoint, else the bundled demo, else (or with --model) random weights: `tiny` (tiny
backbones, 112 px) or `paper` (ResNet-152 + ResNet-18, 224 px, 20 segments, the paper's RAE, 10000
words). Speed does not depend on the weights, except for the caption length: random models never
emit <eos>, so beam search runs --max-len steps (default 20). On CUDA the backbones run
channels_last under bf16 autocast, the RAE in float32 with the Triton kernels. Each timing: a
warm-up run, then the median of --repeat runs, torch.cuda.synchronize() around device work.
Generated clips: GOP 12 without B-frames and GOP 250 with B-frames per size, each listed --copies
times. Writes results.json and throughput.png (bar chart) into --out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

try:
    import av  # noqa: F401 - demuxing, decoding and the baselines all need PyAV
except ImportError:
    sys.exit("error: PyAV is not installed (pip install av): it demuxes and decodes the clips")
import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frontend import decode_needed, generate, naive, smart, smart_nvdec, timed

from vccv_gpu import codec
from vccv_gpu.backbones import BackboneConfig, FeatureExtractor, model_config
from vccv_gpu.caption import caption_videos, collect_videos
from vccv_gpu.checkpoint import Checkpoint, load_checkpoint
from vccv_gpu.codec.colour import rgb_matrix
from vccv_gpu.codec.loader import ClipError, ClipLoader
from vccv_gpu.codec.pyav_frames import PyAVDecoder, decoder_workers, small_frame
from vccv_gpu.codec.resample import residual_from_planes, resize
from vccv_gpu.codec.sample import ClipSample
from vccv_gpu.data import Vocabulary
from vccv_gpu.model import EOS, SPECIAL_TOKENS, VCCV
from vccv_gpu.runtime import atomic_write

# name -> (BackboneConfig fields, VCCVConfig overrides, vocabulary size) of the random-weight models
MODELS: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "tiny": ({"iframe": "tiny", "residual": "tiny", "size": 112}, {"embed": 128, "hidden": 256, "gate_dim": 128}, 1000),
    "paper": ({}, {}, 10_000),
}
STAGES = ("demux + parse", "residual parse", "frame decode", "residual reconstruction (C++)",
          "residual kernel (Triton)", "backbones", "RAE + beam search")


class UsageError(ValueError):
    """Reported as one line and exit status 2."""


class FastBackbones(nn.Module):
    """A FeatureExtractor in channels_last under bf16 autocast (CUDA), returning float32 features."""

    def __init__(self, inner: FeatureExtractor) -> None:
        super().__init__()
        self.inner = inner.to(memory_format=torch.channels_last)
        self.config = inner.config

    def forward(self, iframes: Tensor, residuals: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            v_i, a_r = self.inner(iframes, residuals)
        return v_i.float(), a_r.float()


def random_checkpoint(name: str, segments: int | None, max_len: int) -> Checkpoint:
    fields, overrides, words = MODELS[name]
    config = BackboneConfig(**fields, **({"num_segments": segments} if segments else {}))
    torch.manual_seed(0)
    vocab = Vocabulary(list(SPECIAL_TOKENS) + [f"word{i}" for i in range(words - len(SPECIAL_TOKENS))])
    model = VCCV(model_config(config, len(vocab), max_len=max_len, **overrides))
    with torch.no_grad():  # random weights end captions anywhere; without <eos> each runs max_len steps
        model.classifier.bias[EOS] = -1e4
    return Checkpoint(model.eval(), vocab, FeatureExtractor(config).eval(), {"random_weights": name})


def load_model(args: argparse.Namespace) -> tuple[Checkpoint, str]:
    """The checkpoint to benchmark and a line saying what it is."""
    if args.model:
        return random_checkpoint(args.model, args.segments, args.max_len or 20), f"random weights, '{args.model}'"
    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except FileNotFoundError as e:
        if args.checkpoint is not None:
            raise UsageError(str(e)) from e
        print(f"note: {e}; using random weights ('tiny') instead", file=sys.stderr)
        return random_checkpoint("tiny", args.segments, args.max_len or 20), "random weights, 'tiny' (no demo)"
    except ValueError as e:
        raise UsageError(str(e)) from e
    if checkpoint.backbones is None:
        raise UsageError(f"{checkpoint.path} has no backbones: it cannot caption video")
    return checkpoint, f"checkpoint {checkpoint.path}"


@dataclass
class Plan:
    """What the policy picks in one clip (computed before any timing) and its sampled tensors."""

    path: Path
    sample: ClipSample
    stream: codec.Stream   # the parsed clip (what the bound's decoder is told to decode)


def make_plan(path: Path, config: BackboneConfig) -> Plan:
    sample = codec.sample_clip(path, config.num_segments, config.size, config.residual_mode)
    return Plan(path, sample, codec.open(path))


def decode_only(plan: Plan) -> None:
    # The same parallel decoders as end to end's sample_clip: one decoder would flatter
    # "end to end / min(c, d)".
    decode_needed(plan.path, plan.stream, plan.sample.frame_indices, decoder_workers())


def baseline_sample(plan: Plan, size: int, how: str, device: torch.device | None = None) -> ClipSample:
    """The policy's frames and frame differences, decoded the naive or the smart way (on CUDA,
    "smart-nvdec": SimpleDecoder seek-decoding), resized."""
    indices = plan.sample.frame_indices
    if how == "smart-nvdec":
        frames, diffs = smart_nvdec(plan.path, plan.stream, indices, str(device))
        return replace(plan.sample, iframes=resize(torch.stack(frames), size).round_().clamp_(0, 255).to(torch.uint8),
                       residuals=resize(torch.stack(diffs), size).to(torch.float16))
    if how == "naive":  # the same cores per clip as end to end's sample_clip
        frames, diffs = naive(plan.path, indices, decoder_workers())
    else:
        frames, diffs = smart(plan.path, plan.stream, indices, decoder_workers())

    def small(arrays: list[np.ndarray]) -> Tensor:
        return resize(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float(), size)

    return replace(plan.sample, iframes=small(frames).round_().clamp_(0, 255).to(torch.uint8),
                   residuals=small(diffs).to(torch.float16))


class BaselineLoader(ClipLoader):
    """The ClipLoader that end to end uses, with a baseline's sampling in its worker threads."""

    def __init__(self, plans: list[Plan], sampler: Callable[[Plan], ClipSample], **kwargs: Any) -> None:
        super().__init__(list(range(len(plans))), **kwargs)
        self.plans, self.sampler = plans, sampler

    def _sample(self, index: Any) -> ClipSample | ClipError:
        return self.sampler(self.plans[index])


def front_end_stages(plan: Plan, config: BackboneConfig, device: torch.device, sync: Callable[[], None]) -> dict:
    """Seconds of each front-end stage for one clip, as sample_clip runs them."""
    from vccv_gpu.kernels import reconstruct_residual

    size, times = config.size, dict.fromkeys(STAGES[:5], 0.0)
    start = time.perf_counter()
    stream = codec.open(plan.path)
    times["demux + parse"] = time.perf_counter() - start
    with stream as s:
        matrix = rgb_matrix(s.sequence.get("matrix_coefficients"), bool(s.sequence.get("full_range")))
        for frames in dict.fromkeys(plan.sample.residual_frames):
            planes, buffers = None, []
            for i in frames:
                start = time.perf_counter()
                buffers.append(s.coefficients(i))  # parses the picture (kept for residual() below)
                middle = time.perf_counter()
                res = s.residual(i)  # renders the parsed picture
                r = [torch.from_numpy(np.array(p, dtype=np.int32)) for p in (res.y, res.u, res.v)]
                planes = r if planes is None else [a + b for a, b in zip(planes, r)]
                times["residual parse"] += middle - start
                times["residual reconstruction (C++)"] += time.perf_counter() - middle
            if planes is None:
                continue
            start = time.perf_counter()
            residual_from_planes(*planes, matrix, s.height, s.width, size).half()
            times["residual reconstruction (C++)"] += time.perf_counter() - start
            if device.type == "cuda":
                start = time.perf_counter()
                gpu = [reconstruct_residual(torch.tensor(c.data, device=device), len(c.coeffs4), len(c.coeffs8),
                                            s.coded_width, s.coded_height) for c in buffers]
                summed = [sum(p[k].int() for p in gpu) for k in range(3)]
                residual_from_planes(*summed, matrix, s.height, s.width, size).half()
                sync()
                times["residual kernel (Triton)"] += time.perf_counter() - start
        start = time.perf_counter()
        PyAVDecoder(workers=max(1, min(4, os.cpu_count() or 1))).decode(
            plan.path, s, plan.sample.frame_indices, lambda f: small_frame(f, s, size, False))
        times["frame decode"] = time.perf_counter() - start
    return times


def measure_group(name: str, plans: list[Plan], copies: int, checkpoint: Checkpoint, args: argparse.Namespace,
                  device: torch.device) -> dict[str, Any]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    config, model, backbones = checkpoint.backbones.config, checkpoint.model, checkpoint.backbones
    plans = [p for p in plans for _ in range(copies)]
    n, batch, beam, max_len = len(plans), args.batch, args.beam, args.max_len

    def measure(fn: Callable[[], Any]) -> float:
        """Median seconds of fn() after one warm-up call."""
        fn()
        sync()
        return timed(args.repeat, lambda: (fn(), sync()))

    def run_model(iframes: Tensor, residuals: Tensor) -> list:
        with torch.inference_mode():
            v_i, a_r = backbones(iframes, residuals)
            return model.generate(v_i, a_r, beam_size=beam, max_len=max_len)

    def pipeline(loader: ClipLoader) -> None:
        for b in loader:
            run_model(b.iframes, b.residuals)

    def end_to_end() -> None:
        for result in caption_videos([p.path for p in plans], checkpoint, beam=beam, batch_size=batch,
                                     workers=args.workers, device=device, max_len=max_len):
            if isinstance(result, ClipError):  # it sampled cleanly in make_plan: a bug, not a user error
                raise RuntimeError(f"{result.path}: {result.reason}")  # noqa: TRY004

    unique = list({p.path: p for p in plans}.values())
    by_clip = []  # the front end one clip at a time, each distinct clip: a warm-up, then --repeat runs
    for plan in unique:
        front_end_stages(plan, config, device, sync)
        by_clip.append([front_end_stages(plan, config, device, sync) for _ in range(args.repeat)])
    stages = STAGES[:5] if device.type == "cuda" else STAGES[:4]
    per_clip = {stage: float(np.mean([np.median([r[stage] for r in runs]) for runs in by_clip])) for stage in stages}
    batches = [(torch.stack([p.sample.iframes for p in plans[k:k + batch]]).to(device),
                torch.stack([p.sample.residuals for p in plans[k:k + batch]]).to(device)) for k in range(0, n, batch)]
    with torch.inference_mode():
        features = [backbones(*b) for b in batches]
        per_clip["backbones"] = measure(lambda: [backbones(*b) for b in batches]) / n
        per_clip["RAE + beam search"] = measure(
            lambda: [model.generate(*f, beam_size=beam, max_len=max_len) for f in features]) / n
        words = [len(c[0].tokens) for f in features for c in model.generate(*f, beam_size=beam, max_len=max_len)]
    loader = {"batch_size": batch, "num_segments": config.num_segments, "size": config.size, "device": device,
              "workers": args.workers, "progress": False}

    def in_threads(fn: Callable[[Plan], Any]) -> None:  # --workers clips at a time, like the loader
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(fn, plans))

    naive_loader = BaselineLoader(plans, lambda p: baseline_sample(p, config.size, "naive"), **loader)
    smart_loader = BaselineLoader(plans, lambda p: baseline_sample(p, config.size, "smart"), **loader)
    rates = {"end to end": n / measure(end_to_end), **{stage: 1 / t for stage, t in per_clip.items()},
             "(c) model only": n / measure(lambda: [run_model(*b) for b in batches]),
             "(d) decode only": n / measure(lambda: in_threads(decode_only)),
             "(a) naive": n / measure(lambda: pipeline(naive_loader)),
             "(s) smart": n / measure(lambda: pipeline(smart_loader))}
    skipped = {"(s) smart (NVDEC)": nvdec_note(device)} if nvdec_note(device) else {}
    if not skipped:  # on CUDA with PyNvVideoCodec, the GPU user's smart loader is the one to beat
        nvdec_loader = BaselineLoader(plans, lambda p: baseline_sample(p, config.size, "smart-nvdec", device),
                                      **loader)
        rates["(s) smart (NVDEC)"] = n / measure(lambda: pipeline(nvdec_loader))
    smart_rate = rates.get("(s) smart (NVDEC)", rates["(s) smart"])
    e2e = rates["end to end"]
    return {
        "name": name, "clips": n, "distinct_clips": [str(p.path) for p in unique],
        "policy": sorted({p.sample.policy for p in unique}), "mean_caption_words": float(np.mean(words)),
        "clips_per_s": rates, "seconds_per_clip_by_stage": per_clip,
        "skipped": skipped,
        "ratios": {"end to end / min(c, d)": e2e / min(rates["(c) model only"], rates["(d) decode only"]),
                   "end to end / s": e2e / smart_rate, "end to end / a": e2e / rates["(a) naive"]},
    }


def nvdec_note(device: torch.device) -> str | None:
    """Why the NVDEC smart baseline cannot run here (None: it can)."""
    if device.type != "cuda":
        return "a CPU run (NVDEC needs CUDA)"
    if importlib.util.find_spec("PyNvVideoCodec") is None:
        return "PyNvVideoCodec is not installed"
    return None


def print_table(groups: list[dict[str, Any]]) -> None:
    for g in groups:
        print(f"\n{g['name']}: {g['clips']} clips, policy {'/'.join(g['policy'])}, "
              f"{g['mean_caption_words']:.1f} words per caption")
        for label, rate in g["clips_per_s"].items():
            print(f"  {label:34} {rate:10.2f} clips/s")
        for label, why in g["skipped"].items():
            print(f"  {label:34} skipped: {why}")
        print("  " + "   ".join(f"{k} = {v:.2f}" for k, v in g["ratios"].items()))


def plot(groups: list[dict[str, Any]], path: Path, title: str) -> None:
    try:
        import matplotlib
    except ImportError:
        print(f"no {path.name}: matplotlib is not installed", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 0.35 * 12 * len(groups) + 1), squeeze=False)
    for ax, g in zip(axes[:, 0], groups):
        labels, rates = list(g["clips_per_s"]), list(g["clips_per_s"].values())
        colours = ["tab:red" if k == "end to end" else "tab:blue" if k.startswith("(") else "tab:gray" for k in labels]
        ax.bar_label(ax.barh(labels[::-1], rates[::-1], color=colours[::-1]), fmt="%.3g", padding=2, fontsize=8)
        ax.set_xscale("log")
        ax.set_title(f"{g['name']} ({g['clips']} clips)", fontsize=10)
        ax.set_xlabel("clips per second (log scale)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/throughput.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", nargs="+", default=["generated"], metavar="DIR_OR_FILE",
                        help="clips to measure (directories searched for videos), or 'generated' (default)")
    parser.add_argument("--seconds", type=int, default=10, help="length of generated clips (default 10)")
    parser.add_argument("--sizes", default="1280x720", help="WxH[,WxH...] of generated clips (default 1280x720)")
    parser.add_argument("--copies", type=int, help="times each clip is listed (default: --batch for generated "
                                                    "clips, 1 for --videos)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the front end and the model run (default: cuda when available)")
    parser.add_argument("--batch", type=int, help="clips per batch (default 8 on CUDA, 2 on the CPU)")
    parser.add_argument("--workers", type=int, default=2, help="clip-sampling threads (default 2)")
    parser.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
    parser.add_argument("--max-len", type=int, help="tokens per caption (default: the model's; 20 for random)")
    parser.add_argument("--checkpoint", metavar="CK", help="checkpoint or run folder (default: the bundled demo)")
    parser.add_argument("--model", choices=sorted(MODELS), help="random weights of this configuration instead")
    parser.add_argument("--segments", type=int, help="segments per clip of a random model (default 20)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 on a shared machine)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up; median (default 3)")
    parser.add_argument("--out", type=Path, default=Path("throughput"), help="results folder (default ./throughput)")
    args = parser.parse_args(argv)
    args.batch = args.batch or (8 if args.device == "cuda" else 2)
    if not re.fullmatch(r"\d+x\d+(,\d+x\d+)*", args.sizes):
        parser.error(f"--sizes: expected WxH[,WxH...], got {args.sizes!r}")
    for name in ("seconds", "copies", "batch", "workers", "beam", "max_len", "segments", "threads", "repeat"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint, model_note = load_model(args)
    if device.type == "cuda":
        checkpoint.backbones = FastBackbones(checkpoint.backbones)
    checkpoint.model.to(device).eval()
    checkpoint.backbones.to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        if args.videos == ["generated"]:
            groups = [(p.stem, [p]) for p in generate(Path(tmp), args.sizes.split(","), args.seconds)]
            copies = args.copies or args.batch
        else:
            try:
                groups = [("videos", collect_videos(args.videos))]
            except ValueError as e:
                raise UsageError(str(e)) from e
            copies = args.copies or 1
        results, failed = [], 0
        for name, paths in groups:
            plans = []
            for path in paths:
                try:
                    plans.append(make_plan(path, checkpoint.backbones.config))
                except (codec.StreamError, OSError) as e:
                    print(f"skipped {path}: {e}", file=sys.stderr)
                    failed += 1
            if plans:
                print(f"measuring {name} ({len(plans) * copies} clips) ...", file=sys.stderr)
                results.append(measure_group(name, plans, copies, checkpoint, args, device))
    if not results:
        raise UsageError("no clip could be read")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    if "random_weights" in checkpoint.info:
        model_note += " (speed does not depend on them; no <eos>: beam search runs max_len steps)"
    settings = {"batch": args.batch, "beam": args.beam, "max_len": args.max_len or checkpoint.model.config.max_len,
                "workers": args.workers, "torch_threads": torch.get_num_threads(), "repeat": args.repeat}
    report = {"device": where, "torch": torch.__version__, "model": model_note,
              "backbones": checkpoint.backbones.config.to_dict(), **settings, "groups": results}
    print(f"\n{model_note}\non {where}; " + ", ".join(f"{k} {v}" for k, v in settings.items())
          + " (median of repeat runs after a warm-up)")
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "results.json", lambda f: f.write(json.dumps(report, indent=2).encode()))
    plot(results, args.out / "throughput.png", f"{model_note}\non {where}, batch {args.batch}, beam {args.beam}")
    print(f"\nwrote {args.out}: results.json, throughput.png")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
