"""Two builds of the parser side by side: is B faster than A, and does it give the same arrays?

Each build is a checkout with its extension built in place (`python setup.py build_ext --inplace`),
imported from its own folder by a child process (PYTHONPATH). Per clip and round, the runs go
A, B, B, A (the next round B, A, A, B), every run on the same core; a run times `extract_motion`
over the clip `--passes` times (process time) and keeps the fastest. A round's ratio is A's best
time over B's (> 1: B is faster); the table gives the median over rounds and their range. A
shared VM drifts over minutes and jitters by a few percent from run to run (the same build
against itself: about +-3 % per round here), so interleaving and the median are what make small
differences readable; a ratio within the A-against-A range is no difference.

With --digest, each build also hashes every frame's macroblocks, coefficient blocks (the views:
positions and coefficients, whatever the buffer's layout) and residual planes, and the table says
whether the two builds agree. Parser changes must keep them equal.

    python benchmarks/parser_ab.py ROOT_A ROOT_B [VIDEO ...] [--mode vc] [--rounds 5] [--digest]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parser import clips_to_measure  # noqa: E402  (benchmarks/parser.py)

# What the child process runs, inside the build's folder: the time of each pass or the digest,
# and which vccv_gpu it imported (checked against the build's folder).
CHILD = """
import dataclasses, hashlib, json, sys, time
import numpy as np
import vccv_gpu
from vccv_gpu import codec
clip, mode, passes, digest = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
kw = dict(coefficients="c" in mode, residual="r" in mode, threads=1)
result = {"package": vccv_gpu.__file__, "seconds": []}
for _ in range(passes):
    start = time.process_time()
    for _frame in codec.extract_motion(clip, **kw):
        pass
    result["seconds"].append(time.process_time() - start)
if digest:
    h = hashlib.sha256()
    for f in codec.extract_motion(clip, coefficients=True, residual=True, threads=1):
        c = f.coefficients
        m, r = f.macroblocks, f.residual
        macroblocks = [getattr(m, field.name) for field in dataclasses.fields(m)]
        for a in (*macroblocks, c.positions4, c.positions8, c.coeffs4, c.coeffs8, r.y, r.u, r.v):
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype, a.shape)).encode())
            h.update(a.tobytes())
    result["digest"] = h.hexdigest()
print(json.dumps(result))
"""


def run(root: Path, clip: Path, mode: str, passes: int, cpu: int, digest: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-c", CHILD, str(clip), mode, str(passes),
                           "1" if digest else "0"], cwd=root, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{root} on {clip.name}: the run failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.splitlines()[-1])
    if not Path(result["package"]).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"{root}: imported vccv_gpu from {result['package']}, not from this build "
                         "(build its extension in place: python setup.py build_ext --inplace)")
    return result


def compare(a: Path, b: Path, clip: Path, mode: str, rounds: int, passes: int, cpu: int, digest: bool) -> dict:
    ratios = []
    for k in range(rounds):
        best: dict[Path, float] = {a: float("inf"), b: float("inf")}
        for root in ((a, b, b, a) if k % 2 == 0 else (b, a, a, b)):
            best[root] = min(best[root], *run(root, clip, mode, passes, cpu)["seconds"])
        ratios.append(best[a] / best[b])
    row = dict(clip=clip.name, mode=mode, median=statistics.median(ratios), low=min(ratios), high=max(ratios),
               rounds=ratios)
    if digest:
        row["same_arrays"] = run(a, clip, mode, 0, cpu, True)["digest"] == run(b, clip, mode, 0, cpu, True)["digest"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root_a", type=Path, metavar="ROOT_A", help="checkout of build A (the baseline)")
    parser.add_argument("root_b", type=Path, metavar="ROOT_B", help="checkout of build B (the change)")
    parser.add_argument("videos", nargs="*", type=Path, metavar="VIDEO",
                        help="H.264 files (default: parser.py's generated clips of --sizes, its conformance streams)")
    parser.add_argument("--mode", default="vc", choices=["v", "vc", "vr"],
                        help="vectors only, + coefficients, or + residual planes (default vc)")
    parser.add_argument("--rounds", type=int, default=5, help="A-B-B-A rounds per clip (default 5)")
    parser.add_argument("--passes", type=int, default=3, help="passes over the clip per run, the best kept (default 3)")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)), help="the core every run uses")
    parser.add_argument("--digest", action="store_true", help="also check that both builds give the same arrays")
    parser.add_argument("--sizes", default="1280x720", help="sizes of the generated clips (default 1280x720)")
    parser.add_argument("--seconds", type=int, default=10, help="length of the generated clips (default 10)")
    parser.add_argument("--conformance", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "conformance",
                        help="with no VIDEO, also measure parser.py's streams of this folder (skipped if absent)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [compare(args.root_a, args.root_b, clip, args.mode, args.rounds, args.passes, args.cpu, args.digest)
                for clip in tqdm(clips_to_measure(args, Path(tmp)), desc="A/B")]
    print(f"A = {args.root_a}, B = {args.root_b}; time A / time B (> 1: B faster), {args.mode}, "
          f"{args.rounds} rounds, core {args.cpu}")
    for r in rows:
        same = "" if "same_arrays" not in r else ("  same arrays" if r["same_arrays"] else "  ARRAYS DIFFER")
        print(f"{r['clip']:40} {r['median']:6.3f} ({r['low']:.3f}-{r['high']:.3f}){same}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    if any(r.get("same_arrays") is False for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
