"""Parser speed against libavcodec, in one run on the same clips and the same (every) frame:

  (c)  libavcodec full decode, 1 thread;
  (m1) libavcodec + export_mvs (mv-extractor's route to vectors), 1 thread;
  (mN) the same with libavcodec's default threading (frame and slice threads), N threads;
  ours through codec.extract_motion: vectors only (v), vectors + compact coefficients (vc),
  vectors + residual planes (vr), at 1 thread and at every core (N).

Frames per second over every frame, opening and demuxing included for everyone; ratios to (c)
and (m1). Each clip's columns are timed in --repeat rounds, one run each per round, and the best
round of each is kept; the 1-thread columns all run on the same core.

    python benchmarks/parser.py [--sizes 1280x720,1920x1080] [--seconds 10] [--repeat 3] [VIDEO ...]

With no VIDEO, clips are generated (photographic content with grain, x264 preset medium, crf 20:
CABAC with 3 B-frames and CAVLC without, per size; their bitrates are printed) and a few larger
streams of ../shared/conformance from other encoders are added (--conformance).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm import tqdm

from vccv_gpu import codec
from vccv_gpu.codec.motion import default_threads

try:
    import av
except ImportError:  # the GPU machine has no PyAV: the libavcodec columns are skipped there
    av = None


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(path: Path, threads: int, residual: bool = False, coefficients: bool = False) -> None:
    for _ in codec.extract_motion(path, residual=residual, coefficients=coefficients, threads=threads):
        pass


def libavcodec(path: Path, threads: int, export_mvs: bool) -> None:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        if threads == 1:
            stream.thread_type, stream.thread_count = "NONE", 1
        else:  # FFmpeg's default threading (frame and slice threads) on as many threads as ours
            stream.thread_type, stream.thread_count = "AUTO", threads
        if export_mvs:
            stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in c.decode(stream):
            if export_mvs:
                frame.side_data.get("MOTION_VECTORS")


def generate(folder: Path, sizes: list[str], seconds: int) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ is outside the package
    from tools.clips import make_clip

    clips = []
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        for name, kw in (("cabac-b3", dict(entropy="cabac", bframes=3, gop=250)),
                         ("cavlc-b0", dict(entropy="cavlc", profile="main", bframes=0, gop=50))):
            clips.append(make_clip(folder / f"{name}-{height}p.mp4", size=(width, height), frames=25 * seconds,
                                   fps=25, crf=20, **kw))
    return clips


# Larger streams of ../shared/conformance written by other encoders (JM, OpenH264, a camera-style
# MP4): 720p/1080p CABAC and CAVLC with temporal-direct B pictures, CIF CABAC I slices.
CONFORMANCE_STREAMS = ("openh264/VID_1280x720_cabac_temporal_direct.264",
                       "openh264/VID_1280x720_cavlc_temporal_direct.264",
                       "openh264/VID_1920x1080_cabac_temporal_direct.264",
                       "openh264/VID_1920x1080_cavlc_temporal_direct.264",
                       "openh264/test_cif_I_CABAC_slice.264", "defects/mp4-init-nonkeyframe-1.mp4")


def measure(path: Path, repeat: int, threads: int) -> dict:
    with codec.open(path) as s:
        frames, size, seconds = len(s.frames), f"{s.width}x{s.height}", s.duration
    row: dict = dict(clip=path.name, size=size, frames=frames,
                     mbit_s=path.stat().st_size * 8 / 1e6 / seconds if seconds else None)
    columns: dict[str, Callable[[], object]] = {
        "v1": lambda: ours(path, 1), "vc1": lambda: ours(path, 1, coefficients=True),
        "vr1": lambda: ours(path, 1, residual=True),
        "vN": lambda: ours(path, threads), "vcN": lambda: ours(path, threads, coefficients=True),
        "vrN": lambda: ours(path, threads, residual=True),
    }
    if av is not None:
        columns |= {"c": lambda: libavcodec(path, 1, False), "m1": lambda: libavcodec(path, 1, True),
                    "mN": lambda: libavcodec(path, threads, True)}
    # Round robin: every column is timed once per round, and its best round kept, so that a
    # machine whose speed drifts over minutes (a shared VM) slows every column alike.
    # The 1-thread columns run on one core, the same for all: a shared VM's cores can differ in
    # speed by a fifth, and a process left to the scheduler lands on either.
    cores = os.sched_getaffinity(0)
    best = dict.fromkeys(columns, float("inf"))
    for _ in range(repeat):
        for name, fn in columns.items():
            os.sched_setaffinity(0, {min(cores)} if name.endswith("1") or name == "c" else cores)
            try:
                best[name] = min(best[name], timed(fn))
            finally:
                os.sched_setaffinity(0, cores)
    return row | {name: frames / seconds for name, seconds in best.items()}


def clips_to_measure(args: argparse.Namespace, folder: Path,
                     streams: Iterable[str] = CONFORMANCE_STREAMS) -> list[Path]:
    """args.videos, else clips generated into `folder` (args.sizes, args.seconds) and those of `streams`
    that args.conformance holds."""
    if args.videos:
        return list(args.videos)
    clips = generate(folder, args.sizes.split(","), args.seconds)
    return clips + [args.conformance / name for name in streams if (args.conformance / name).is_file()]


def clip_arguments(description: str, kind: str, defaults: str) -> argparse.ArgumentParser:
    """The options of the clips to measure, shared with engine_floor.py: `kind` of H.264 files,
    else generated clips and conformance streams (`defaults` says which)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path, metavar="VIDEO",
                        help=f"{kind} files to measure (default: {defaults})")
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="sizes of the generated clips")
    parser.add_argument("--seconds", type=int, default=10, help="length of the generated clips")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds per clip, each column timed once a round; the fastest is kept (default 3)")
    parser.add_argument("--conformance", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "conformance",
                        help="with no VIDEO, also measure streams of this folder (skipped if absent)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    return parser


def main() -> None:
    parser = clip_arguments(__doc__, "H.264", "generated clips and a few larger conformance streams")
    parser.add_argument("--threads", type=int, default=default_threads(), help="N (default: every core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(path, args.repeat, args.threads) for path in tqdm(clips_to_measure(args, Path(tmp)),
                                                                           desc="measuring")]
    names = ["c", "m1", "mN", "v1", "vc1", "vr1", "vN", "vcN", "vrN"]
    print(f"fps over every frame; N = {args.threads} threads; ratios: ours / (c) and ours / (m1)")
    print(f"{'clip':40} {'size':>9} {'Mbit/s':>6} " + " ".join(f"{n:>6}" for n in names)
          + "  v1/c vc1/c vr1/c  v1/m1 vN/mN")
    for r in rows:
        cells = " ".join(f"{r[n]:6.0f}" if n in r else f"{'-':>6}" for n in names)
        rate = f"{r['mbit_s']:6.1f}" if r["mbit_s"] else f"{'-':>6}"
        ratios = ""
        if "c" in r:
            ratios = (f"  {r['v1'] / r['c']:4.2f} {r['vc1'] / r['c']:5.2f} {r['vr1'] / r['c']:5.2f}"
                      f"  {r['v1'] / r['m1']:5.2f} {r['vN'] / r['mN']:5.2f}")
        print(f"{r['clip']:40} {r['size']:>9} {rate} {cells}{ratios}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
