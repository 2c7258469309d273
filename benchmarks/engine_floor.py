"""The CABAC engine's floor: what parsing would cost if the syntax around the bins were free.

Every bin the parser decodes from a clip (decisions with their contexts, bypass and terminate
bins) is recorded by a build of the extension with VCCV_TRACE_BINS (csrc/bin_trace.h), then
decoded again on the arithmetic decoder alone, in order, and checked against the record. The
replay runs the parser's own decision code ("engine"), and a variant that selects the LPS/MPS
outcome without a branch ("branch-free"), which no mispredicted bin slows. Side by side in one
run, in interleaved rounds (the best of each column kept), every process on one core (--cpu: the
cores of a shared VM can run at different speeds), with:

  (c)  libavcodec's full decode, 1 thread (as benchmarks/parser.py);
  (v)  our parse for vectors, (vc) for vectors + coefficients, 1 thread (codec.extract_motion).

fps over every frame. The replay's time is the bins' decoding alone (no demuxing, no Python), so
engine/c is an upper bound: the most any parser built on this engine could reach against (c) on
this machine. v/engine is how much of the engine's speed the whole parse keeps.

    python benchmarks/engine_floor.py [--repeat 3] [VIDEO ...]

With no VIDEO: the generated CABAC clips of benchmarks/parser.py (720p and 1080p) and OpenH264's
720p and 1080p CABAC streams from ../shared/conformance. CAVLC streams have no CABAC bins.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from parser import CONFORMANCE_STREAMS as PARSER_STREAMS  # noqa: E402  (benchmarks/parser.py)
from parser import clip_arguments, generate, libavcodec, ours, timed  # noqa: E402

# parser.py's 720p/1080p CABAC conformance streams.
CONFORMANCE_STREAMS = [n for n in PARSER_STREAMS if "cabac_temporal_direct" in n]


def build_traced(folder: Path) -> Path:
    """A copy of the vccv_gpu package in `folder` whose extension records bins; returns the
    folder to put on PYTHONPATH. Needs cmake, ninja and pybind11 (the build requirements)."""
    import cmake
    import ninja
    import pybind11

    package = folder / "vccv_gpu"
    shutil.copytree(ROOT / "vccv_gpu", package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    build = folder / "build"
    build.mkdir()
    subprocess.run([str(Path(cmake.CMAKE_BIN_DIR) / "cmake"), str(ROOT), "-G", "Ninja",
                    f"-DCMAKE_MAKE_PROGRAM={Path(ninja.BIN_DIR) / 'ninja'}",
                    f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={package}", f"-DPython_EXECUTABLE={sys.executable}",
                    f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", "-DCMAKE_BUILD_TYPE=None",
                    "-DVCCV_TRACE_BINS=ON"], cwd=build, check=True, capture_output=True)
    subprocess.run([str(Path(cmake.CMAKE_BIN_DIR) / "cmake"), "--build", ".", "--target", "_h264", "-j",
                    str(os.cpu_count() or 1)], cwd=build, check=True, capture_output=True)
    return folder


def serve_replays(path: Path, passes: int) -> None:
    """Runs in the traced package's process: records every bin of `path`, prints
    {"bins", "frames"}, then, for every line on stdin, replays them and prints the seconds."""
    from vccv_gpu import _h264, codec

    _h264.record_bins(True)
    frames = sum(1 for _ in codec.extract_motion(path, threads=1))
    _h264.record_bins(False)
    bins = _h264.replay_bins(1, False)[1]
    print(json.dumps({"bins": bins, "frames": frames}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({"engine": _h264.replay_bins(passes, False)[0],
                          "branch_free": _h264.replay_bins(passes, True)[0]}), flush=True)


def measure(path: Path, traced: Path, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(traced), "OMP_NUM_THREADS": "1"}
    with subprocess.Popen([sys.executable, __file__, "--serve-replays", str(path)], env=env, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as server:
        row = {"clip": path.name, **json.loads(server.stdout.readline())}
        best = dict.fromkeys(["c", "v", "vc", "engine", "branch_free"], float("inf"))
        for _ in range(repeat):
            best["c"] = min(best["c"], timed(lambda: libavcodec(path, 1, False)))
            best["v"] = min(best["v"], timed(lambda: ours(path, 1)))
            best["vc"] = min(best["vc"], timed(lambda: ours(path, 1, coefficients=True)))
            server.stdin.write("replay\n")
            server.stdin.flush()
            replayed = json.loads(server.stdout.readline())
            for name in ("engine", "branch_free"):
                best[name] = min(best[name], replayed[name])
        server.stdin.close()
        if server.wait() != 0:
            raise RuntimeError(f"{path}: the replay failed")
    return row | {name: row["frames"] / seconds for name, seconds in best.items()} | {
        "ns_per_bin": best["engine"] / row["bins"] * 1e9,
        "ns_per_bin_branch_free": best["branch_free"] / row["bins"] * 1e9}


def main() -> None:
    parser = clip_arguments(__doc__, "CABAC H.264", "the generated CABAC clips and two conformance streams")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)),
                        help="the core every timed process runs on (default: the first this process may use)")
    parser.add_argument("--serve-replays", type=Path, help=argparse.SUPPRESS)  # the traced process (internal)
    args = parser.parse_args()
    if args.serve_replays:
        serve_replays(args.serve_replays, passes=3)
        return
    from tqdm import tqdm

    with tempfile.TemporaryDirectory() as tmp:
        traced = build_traced(Path(tmp) / "traced")
        clips = args.videos
        if not clips:
            clips = [p for p in generate(Path(tmp), args.sizes.split(","), args.seconds) if p.name.startswith("cabac")]
            clips += [args.conformance / name for name in CONFORMANCE_STREAMS if (args.conformance / name).is_file()]
        os.sched_setaffinity(0, {args.cpu})  # after the build; the replaying process inherits it
        rows = [measure(path, traced, args.repeat) for path in tqdm(clips, desc="measuring")]
    print("fps over every frame, 1 thread; engine: the recorded bins replayed on the arithmetic decoder alone")
    print(f"{'clip':40} {'bins/frame':>10} {'c':>6} {'v':>6} {'vc':>6} {'engine':>6} {'b-free':>6} {'ns/bin':>6}"
          "  engine/c b-free/c  v/c vc/c  v/engine")
    for r in rows:
        print(f"{r['clip']:40} {r['bins'] / r['frames']:10.0f} {r['c']:6.0f} {r['v']:6.0f} {r['vc']:6.0f} "
              f"{r['engine']:6.0f} {r['branch_free']:6.0f} {r['ns_per_bin']:6.2f}  {r['engine'] / r['c']:8.2f} "
              f"{r['branch_free'] / r['c']:8.2f} {r['v'] / r['c']:4.2f} {r['vc'] / r['c']:4.2f} "
              f"{r['v'] / r['engine']:9.2f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
