"""Front-end speed: `codec.sample_clip` (N frames + N residual frames) against the decode-only
bound and the loaders people use today, side by side on the same clips and device.

    python benchmarks/frontend.py [--device cpu] [--seconds 10] [--sizes 1280x720,1920x1080] [VIDEO ...]

  ours   sample_clip(num_segments=N, size=224, residual="middle")
  bound  the same decoder decoding only the frames the policy needs, nothing else (no parsing,
         conversion or resizing): the front end's own decoding (seeks to the sampled frames'
         keyframes, unreferenced pictures skipped, nothing after the last)
  naive  decode every frame to RGB, then take the sampled frames and their differences with the
         next frame, converting only those to int16 (what CoViAR-style loaders do)
  smart  a careful torchcodec/decord user: the sampled frames and the next ones, by GOP, one
         seek to each GOP's keyframe and decoding on to its last needed frame (nothing after it,
         no GOP without needed frames); only those frames converted to RGB

Each baseline is measured twice, and the table shows both side by side:
  plain  libavcodec's default threading as PyAV sets it (slice threads: one thread on the
         usual one-slice clips), one decoder: what the baselines' users get out of the box
  *      the same cores as ours, which splits the GOPs it needs over W = decoder_workers() (up
         to min(4, CPUs)) decoders in threads (one run of GOPs: one decoder, frame threads):
         bound* and smart* split their GOPs the same way; naive* one decoder with W frame threads
The table gives clips/s, then "ours x": each column's seconds per clip / ours' (how many times
faster ours is); old ratios = the plain columns, new (same cores) = the * columns.

Clips are generated (grainy photographic content, GOP 12 without B-frames and GOP 250 with
B-frames) unless files are given (containers with timestamps: smart seeks). Each column is run
once untimed, then measured as the median of --repeat rounds, the columns in a shuffled order
within each round. `--device cuda` times the GPU front end (codec/nvdec.py: NVDEC frames when
PyNvVideoCodec is installed, else PyAV's; residuals reconstructed on the GPU); then bound is NVDEC
through the front end's session pool, and smart a SimpleDecoder seek-decoding each needed frame
and the next, taken warm from a session pool of its own like ours (PyNvVideoCodec needed for these;
naive stays libavcodec; bound* = bound and smart* = smart there).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm import tqdm

from vccv_gpu import codec
from vccv_gpu.codec.plan import gop_groups, split_runs
from vccv_gpu.codec.pyav_frames import PyAVDecoder, decoder_workers


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
    PyAVDecoder(workers).decode(path, stream, indices, convert=lambda frame: None)


def decode_needed_nvdec(path: Path, stream: codec.Stream, indices: list[int], device: str) -> None:
    """The GPU bound: the GPU front end's NVDEC decoding (its pool of sessions) of the frames the
    policy needs, nothing else."""
    import torch

    from vccv_gpu.codec import nvdec

    with ThreadPoolExecutor(nvdec.NVDEC_SESSIONS) as pool:
        nvdec.decode_nvdec(path, stream, indices, lambda nv12: nv12[:0], torch.device(device), pool)
    torch.cuda.synchronize()


@functools.cache
def _smart_sessions(device: str) -> Any:
    """The NVDEC smart baseline's own pool of SimpleDecoders, kept warm across clips like ours."""
    from vccv_gpu.codec import nvdec

    return nvdec.DecoderPool(device)


def smart_nvdec(path: Path, stream: codec.Stream, indices: list[int], device: str) -> tuple[list, list]:
    """A careful PyNvVideoCodec user: a warm SimpleDecoder (pointed at the file with
    reconfigure_decoder) seek-decodes each needed frame and the next one from its keyframe;
    frames converted to RGB on the GPU. Returns the frames (uint8 [3, H, W]) and the differences
    with the next frame (int16), on the GPU."""
    import torch

    from vccv_gpu.codec import nvdec
    from vccv_gpu.codec.colour import swscale_coefficients, swscale_rgb, upsample_chroma
    from vccv_gpu.codec.nv12 import nv12_planes

    width, height = stream.width, stream.height
    k = swscale_coefficients(None, False)
    rgb = {}
    with _smart_sessions(device).borrow() as slot:
        decoder = slot.open(path, (stream.coded_width, stream.coded_height))
        last = len(decoder) - 1
        wanted = sorted(set(indices) | {min(i + 1, last) for i in indices})
        with nvdec._on(slot.stream, slot.device):
            for i, frame in zip(wanted, decoder.get_batch_frames_by_index(wanted)):
                y, u, v = nv12_planes(nvdec._as_nv12(frame, width, height, str(path)))
                rgb[i] = swscale_rgb(y, upsample_chroma(u, height, width), upsample_chroma(v, height, width), k)
            frames, diffs = frames_and_differences(rgb, indices, last, lambda t: t.to(torch.int16))
        nvdec._synchronize(slot.stream)  # done with the decoder's memory before the slot is reused
    nvdec._record(dict(enumerate(frames + diffs)), torch.device(device))  # made on the slot's stream
    return frames, diffs


def frames_and_differences(rgb: Any, indices: list[int], last: int,
                           widen: Callable[[Any], Any] = lambda a: a.astype(np.int16)) -> tuple[list, list]:
    """The frames `indices` of `rgb` (by display index) and their differences with the next
    frame (the last frame's with itself), widened to int16 by `widen`."""
    return [rgb[i] for i in indices], [widen(rgb[min(i + 1, last)]) - rgb[i] for i in indices]


def use_threads(context: Any, threads: int) -> None:
    """threads 0: libavcodec's default threading as PyAV sets it (slice threads); else that many
    frame threads."""
    if threads:
        context.thread_type = "FRAME"
        context.thread_count = threads


def naive(path: Path, indices: list[int], threads: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every frame decoded to RGB (uint8 [H, W, 3]); returns the frames `indices` and their
    differences with the next frame (int16). threads: see `use_threads`."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        use_threads(vs.codec_context, threads)
        rgb = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    return frames_and_differences(rgb, indices, len(rgb) - 1)


def smart(path: Path, stream: codec.Stream, indices: list[int],
          threads: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What torchcodec and decord do for a list of frames: the needed frames (`indices` and the
    next ones) by GOP, one seek to each GOP's keyframe and decoding on to its needed frames, only
    those converted to RGB. `stream` (codec.open's) gives the frames' timestamps and keyframes, as
    those libraries' index does. threads 0: one decoder, libavcodec's default threading; N: as
    ours decodes, the GOPs split into up to N runs, each with its own decoder in a thread (a single
    run: one decoder with N frame threads). Returns what `naive` does."""
    if stream.container == "h264":
        raise ValueError(f"{path}: the smart baseline seeks, so it needs a container with timestamps")
    last = len(stream.frames) - 1
    wanted = sorted(set(indices) | {min(i + 1, last) for i in indices})
    runs = split_runs(list(gop_groups(stream, wanted).items()), max(1, threads))
    if len(runs) == 1:
        rgb = seek_decode(path, stream, runs[0], threads)
    else:
        rgb = {}
        with ThreadPoolExecutor(len(runs)) as pool:
            for part in pool.map(lambda run: seek_decode(path, stream, run, 0), runs):
                rgb.update(part)
    return frames_and_differences(rgb, indices, last)


def seek_decode(path: Path, stream: codec.Stream, groups: list[tuple[int, list[int]]],
                threads: int) -> dict[int, np.ndarray]:
    """{display index: RGB uint8 [H, W, 3]} of the frames of `groups` ((keyframe's decoding
    index, display indices), as `gop_groups` makes them), each GOP seeked to and decoded on to
    its last needed frame by one decoder (threads: see `use_threads`)."""
    frames, pictures = stream.frames, stream.pictures
    rgb = {}
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        use_threads(vs.codec_context, threads)
        for key, targets in groups:
            # to the keyframe's own timestamp (torchcodec looks it up in its index likewise)
            c.seek(pictures[key].pts, stream=vs, backward=True)  # also flushes the decoder
            decoded = c.decode(vs)
            for i in targets:
                for frame in decoded:
                    if frame.pts == frames[i].pts:
                        rgb[i] = frame.to_ndarray(format="rgb24")
                        break
                else:
                    raise RuntimeError(f"{path}: frame {i} (display order) did not come out of the decoder")
    return rgb


def generate(folder: Path, sizes: list[str], seconds: int) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ is outside the package
    from tools.clips import make_clip

    clips = []
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        for name, kw in (("gop12-b0", dict(gop=12, bframes=0)), ("gop250-b3", dict(gop=250, bframes=3))):
            clips.append(make_clip(folder / f"{name}-{height}p.mp4", size=(width, height), frames=25 * seconds,
                                   fps=25, crf=20, **kw))
    return clips


# (column, label) in the table's order; a "_all" column has the same cores as ours
COLUMNS = (("ours", "ours"), ("bound", "bound"), ("bound_all", "bound*"), ("naive", "naive"),
           ("naive_all", "naive*"), ("smart", "smart"), ("smart_all", "smart*"))


def columns(path: Path, stream: codec.Stream, indices: list[int], segments: int, device: str,
            workers: int) -> dict[str, Any]:
    """{column: a call that does its work on this clip}; on CUDA the NVDEC bound and smart columns,
    which have no threading to set, stand for their "_all" columns too (left out here)."""
    calls = {"ours": lambda: codec.sample_clip(path, num_segments=segments, size=224, device=device),
             "naive": lambda: naive(path, indices),
             "naive_all": lambda: naive(path, indices, workers)}
    if device.startswith("cuda"):
        calls.update(bound=lambda: decode_needed_nvdec(path, stream, indices, device),
                     smart=lambda: smart_nvdec(path, stream, indices, device))
    else:
        calls.update(bound=lambda: decode_needed(path, stream, indices, 1),
                     bound_all=lambda: decode_needed(path, stream, indices, workers),
                     smart=lambda: smart(path, stream, indices),
                     smart_all=lambda: smart(path, stream, indices, workers))
    return calls


def print_table(rows: list[dict[str, Any]], device: str, workers: int) -> None:
    """Clips per second of every column, then ours' speedup over each baseline, old (default
    threading) and new (same cores) side by side."""
    names = [name for name, _ in COLUMNS]
    print(f"{'clip':24} {'policy':9} " + " ".join(f"{label:>7}" for _, label in COLUMNS) + "   (clips/s)")
    for r in rows:
        print(f"{r['clip']:24} {r['policy']:9} " + " ".join(f"{1 / r[name]:7.2f}" for name in names))
    print(f"\n{'ours x':34} " + " ".join(f"{label:>7}" for _, label in COLUMNS[1:])
          + "   (old: plain columns, new: * columns)")
    for r in rows:
        print(f"{r['clip']:24} {r['policy']:9} " + " ".join(f"{r[name] / r['ours']:7.2f}" for name in names[1:]))
    if device.startswith("cuda"):
        print("bound = bound*: the GPU front end's NVDEC sessions; smart = smart*: a warm SimpleDecoder "
              f"seek-decoding; naive: one decoder, default threading / {workers} frame threads")
    else:
        print(f"plain: one decoder, libavcodec's default threading; bound*, smart*: GOPs split over {workers} "
              f"decoders like ours (one run: frame threads); naive*: {workers} frame threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path, help="files to measure (default: generated clips)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--segments", type=int, default=20, help="N, sampled frames per clip (default: 20)")
    parser.add_argument("--seconds", type=int, default=10, help="length of the generated clips (default: 10)")
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="sizes of the generated clips")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the median is kept")
    parser.add_argument("--json", type=Path, help="also write the results here (seconds per clip by column)")
    args = parser.parse_args()
    rows = []
    workers = decoder_workers()
    with tempfile.TemporaryDirectory() as tmp:
        clips = args.videos or generate(Path(tmp), args.sizes.split(","), args.seconds)
        for path in tqdm(clips, desc="clips"):
            sample = codec.sample_clip(path, num_segments=args.segments, size=224, device=args.device)
            with codec.open(path) as stream:
                times = columns(path, stream, sample.frame_indices, args.segments, args.device, workers)
                for fn in times.values():  # untimed: file caches, and warm NVDEC sessions as ours has
                    fn()
                # interleaved rounds in a shuffled order, so that neither a slow moment of the
                # machine nor what the previous column left in memory favours one column
                runs: dict[str, list[float]] = {name: [] for name in times}
                order = list(times)
                for round_ in range(args.repeat):
                    random.Random(round_).shuffle(order)
                    for name in order:
                        runs[name].append(timed(1, times[name]))
            row = dict(clip=path.name, policy=sample.policy, threads=workers,
                       **{name: statistics.median(t) for name, t in runs.items()})
            for name in ("bound", "smart"):  # CUDA: one NVDEC column stands for both
                row.setdefault(f"{name}_all", row[name])
            rows.append(row)
    print_table(rows, args.device, workers)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
