"""Macroblock-layer parser speed, single-threaded, in one run on the same clips:

  (a) our parser producing motion vectors + residual planes of every P/B frame,
  (b) our parser producing only the compact coefficients of every P/B frame,
  (c) PyAV/libavcodec decoding the clip (1 thread), frames per second over all frames.

    python benchmarks/parser.py [--size 1280x720] [--frames 250] [--repeat 3] [VIDEO ...]

With no VIDEO, clips are generated at --size (and 1080p with --full): CAVLC and CABAC, GOP 12
without B-frames and GOP 250 with B-frames.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from vccv_gpu import codec

try:
    import av
except ImportError:  # the GPU machine has no PyAV: (c) is skipped there
    av = None


def timed(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def parse_full(path: Path, indices: list[int]) -> None:
    with codec.open(path) as s:
        for i in indices:
            s.macroblocks(i)
            s.residual(i)


def parse_coefficients(path: Path, indices: list[int]) -> None:
    with codec.open(path) as s:
        for i in indices:
            s.coefficients(i)


def decode_all(path: Path) -> None:
    with av.open(str(path)) as c:
        c.streams.video[0].thread_count = 1
        c.streams.video[0].thread_type = "NONE"
        for _ in c.decode(video=0):
            pass


def generate(folder: Path, sizes: list[str], frames: int) -> list[Path]:
    from vccv_gpu.testing import make_clip

    configs = {"cavlc-gop12-b0": dict(profile="main", entropy="cavlc", gop=12),
               "cavlc-gop250-b3-high": dict(profile="high", entropy="cavlc", gop=250, bframes=3),
               "cabac-gop12-b0": dict(profile="high", gop=12),
               "cabac-gop250-b3-high": dict(profile="high", gop=250, bframes=3)}
    jobs = [(size, name, kw) for size in sizes for name, kw in configs.items()]
    clips = []
    for size, name, kw in tqdm(jobs, desc="encoding"):
        width, height = (int(v) for v in size.split("x"))
        clips.append(make_clip(folder / f"{name}-{height}p.mp4", size=(width, height), frames=frames, **kw))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--full", action="store_true", help="also 1920x1080 clips")
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [args.size] + (["1920x1080"] if args.full else [])
        clips = args.videos or generate(Path(tmp), sizes, args.frames)
        for path in tqdm(clips, desc="measuring"):
            with codec.open(path) as s:
                inter = [f.index for f in s.frames if f.type in "PB"]
                total = len(s.frames)
                size = f"{s.width}x{s.height}"
            row = dict(clip=path.name, size=size, frames=total, inter_frames=len(inter),
                       a_fps=len(inter) / timed(args.repeat, lambda: parse_full(path, inter)),
                       b_fps=len(inter) / timed(args.repeat, lambda: parse_coefficients(path, inter)))
            if av is not None:
                row["c_fps"] = total / timed(args.repeat, lambda: decode_all(path))
                row["a_over_c"] = row["a_fps"] / row["c_fps"]
                row["b_over_c"] = row["b_fps"] / row["c_fps"]
            rows.append(row)
    print(f"{'clip':30} {'size':>9} {'P/B':>5} {'(a) mv+res':>11} {'(b) coeffs':>11} {'(c) decode':>11} "
          f"{'a/c':>6} {'b/c':>6}")
    for r in rows:
        line = f"{r['clip']:30} {r['size']:>9} {r['inter_frames']:5d} {r['a_fps']:9.0f}/s {r['b_fps']:9.0f}/s"
        if "c_fps" in r:
            line += f" {r['c_fps']:9.0f}/s {r['a_over_c']:6.2f} {r['b_over_c']:6.2f}"
        print(line)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
