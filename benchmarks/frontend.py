"""Front-end speed: `codec.sample_clip` (N frames + N residual frames) against the decode-only
bound and the loaders people use today, side by side on the same clips and device.

    python benchmarks/frontend.py [--device cpu] [--seconds 10] [--sizes 1280x720,1920x1080] [VIDEO ...]

  ours   sample_clip(num_segments=N, size=224, residual="middle")
  bound  the same decoder decoding only the frames the policy needs, nothing else (no parsing,
         conversion or resizing): the front end's own decoding (seeks to the sampled frames'
         keyframes, unreferenced pictures skipped, nothing after the last) with one decoder and
         libavcodec's default threading
  bound* the same with the front end's decoders (up to 4 in parallel, frame threads for one GOP)
  naive  decode every frame to RGB, then take the sampled frames and frame differences
         (what CoViAR-style loaders do)
  smart  decode every frame but convert only the 2N needed ones (a careful torchcodec/decord user)

Baselines use libavcodec's default threading; clips are generated (grainy photographic content,
GOP 12 without B-frames and GOP 250 with B-frames) unless files are given. Each measurement is
the median of --repeat rounds, the columns in a shuffled order within each round. `--device cuda` times the
GPU front end (codec/gpu.py: NVDEC frames when PyNvVideoCodec is installed, else PyAV's;
residuals reconstructed on the GPU); then bound and bound* are NVDEC through the front end's
session pool, and smart is a SimpleDecoder seek-decoding each needed frame and the next
(PyNvVideoCodec needed for these; naive stays libavcodec).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from vccv_gpu import codec
from vccv_gpu.codec.sample import decode_frames, decoder_workers


def timed(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def decode_needed(path: Path, stream: codec.Stream, indices: list[int], workers: int) -> None:
    """The bound: the front end's own decoding of the frames the policy needs (seeks to their
    keyframes, lone keyframes decoded alone, unreferenced pictures skipped, nothing after the
    last), with `workers` decoders, and nothing else (no parsing, conversion or resizing)."""
    decode_frames(path, stream, indices, convert=lambda frame: None, workers=workers)


def decode_needed_nvdec(path: Path, stream: codec.Stream, indices: list[int], device: str) -> None:
    """The GPU bound: the GPU front end's NVDEC decoding (its pool of sessions) of the frames the
    policy needs, nothing else."""
    import torch

    from vccv_gpu.codec import gpu

    with ThreadPoolExecutor(gpu.NVDEC_SESSIONS) as pool:
        gpu.decode_nvdec(path, stream, indices, lambda nv12: nv12[:0], torch.device(device), pool)
    torch.cuda.synchronize()


def smart_nvdec(path: Path, indices: list[int], size: tuple[int, int], device: str) -> tuple[list, list]:
    """A careful PyNvVideoCodec user: a SimpleDecoder seek-decodes each needed frame and the
    next one (for the difference) from its keyframe; frames converted to RGB on the GPU.
    size: (width, height) of the clip. Returns the frames (uint8 [3, H, W]) and the differences
    with the next frame (int16), on the GPU."""
    import torch

    from vccv_gpu.codec import gpu
    from vccv_gpu.codec.colour import swscale_coefficients, swscale_rgb, upsample_chroma

    nvc = gpu._nvc()
    decoder = nvc.SimpleDecoder(str(path), gpu_id=torch.device(device).index or 0, use_device_memory=True,
                                output_color_type=nvc.OutputColorType.NATIVE)
    last = len(decoder) - 1
    wanted = sorted(set(indices) | {min(i + 1, last) for i in indices})
    k = swscale_coefficients(None, False)
    rgb = {}
    for i, frame in zip(wanted, decoder.get_batch_frames_by_index(wanted)):
        y, u, v = gpu.nv12_planes(gpu._as_nv12(frame, size[0], size[1], str(path)))
        rgb[i] = swscale_rgb(y, upsample_chroma(u, size[1], size[0]), upsample_chroma(v, size[1], size[0]), k)
    frames = [rgb[i] for i in indices]
    diffs = [rgb[min(i + 1, last)].to(torch.int16) - rgb[i] for i in indices]
    torch.cuda.synchronize()
    return frames, diffs


def naive(path: Path, indices: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every frame to RGB; returns the frames `indices` and their differences with the frame
    before (int16 [H, W, 3])."""
    with av.open(str(path)) as c:
        rgb = [f.to_ndarray(format="rgb24").astype("int16") for f in c.decode(video=0)]
    return [rgb[i] for i in indices], [rgb[i] - rgb[max(i - 1, 0)] for i in indices]


def smart(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Every frame decoded, only the frames `indices` and the ones before them converted to
    RGB (uint8 [H, W, 3], by display index)."""
    wanted = set(indices) | {max(i - 1, 0) for i in indices}
    with av.open(str(path)) as c:
        return {i: f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i in wanted}


def generate(folder: Path, sizes: list[str], seconds: int) -> list[Path]:
    from vccv_gpu.testing import make_clip

    clips = []
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        for name, kw in (("gop12-b0", dict(gop=12, bframes=0)), ("gop250-b3", dict(gop=250, bframes=3))):
            clips.append(make_clip(folder / f"{name}-{height}p.mp4", size=(width, height), frames=25 * seconds,
                                   fps=25, crf=20, **kw))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path, help="files to measure (default: generated clips)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--segments", type=int, default=20, help="N, sampled frames per clip (default: 20)")
    parser.add_argument("--seconds", type=int, default=10, help="length of the generated clips (default: 10)")
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="sizes of the generated clips")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the median is kept")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = []
    workers = decoder_workers()
    with tempfile.TemporaryDirectory() as tmp:
        clips = args.videos or generate(Path(tmp), args.sizes.split(","), args.seconds)
        for path in tqdm(clips, desc="clips"):
            sample = codec.sample_clip(path, num_segments=args.segments, size=224, device=args.device)
            indices = sample.frame_indices
            with codec.open(path) as stream:
                times = {
                    "ours": lambda: codec.sample_clip(path, num_segments=args.segments, size=224, device=args.device),
                    "bound": lambda: decode_needed(path, stream, indices, 1),
                    "bound_all": lambda: decode_needed(path, stream, indices, workers),
                    "naive": lambda: naive(path, indices),
                    "smart": lambda: smart(path, indices),
                }
                if args.device.startswith("cuda"):  # NVDEC for the bound and the smart baseline
                    times["bound"] = times["bound_all"] = lambda: decode_needed_nvdec(path, stream, indices,
                                                                                     args.device)
                    times["smart"] = lambda: smart_nvdec(path, indices, (stream.width, stream.height), args.device)
                # interleaved rounds in a shuffled order, so that neither a slow moment of the
                # machine nor what the previous column left in memory favours one column
                runs: dict[str, list[float]] = {name: [] for name in times}
                order = list(times)
                for round_ in range(args.repeat):
                    random.Random(round_).shuffle(order)
                    for name in order:
                        runs[name].append(timed(1, times[name]))
            rows.append(dict(clip=path.name, policy=sample.policy,
                             **{name: statistics.median(t) for name, t in runs.items()}))
    print(f"{'clip':24} {'policy':9} {'ours':>7} {'bound':>7} {'bound*':>7} {'naive':>7} {'smart':>7} "
          f"{'/bound':>7} {'/bound*':>8} {'x naive':>8} {'x smart':>8}   (clips/s)")
    for r in rows:
        print(f"{r['clip']:24} {r['policy']:9} {1 / r['ours']:7.2f} {1 / r['bound']:7.2f} {1 / r['bound_all']:7.2f} "
              f"{1 / r['naive']:7.2f} {1 / r['smart']:7.2f} {r['bound'] / r['ours']:7.2f} "
              f"{r['bound_all'] / r['ours']:8.2f} {r['naive'] / r['ours']:8.2f} {r['smart'] / r['ours']:8.2f}")
    if args.device.startswith("cuda"):
        print("bound = bound*: the GPU front end's NVDEC sessions; smart: SimpleDecoder seek-decoding")
    else:
        print(f"bound: one decoder (libavcodec's default threading); bound*: the front end's {workers} decoders")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
