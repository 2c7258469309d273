"""Runs every stream of the conformance set through the parser once, for the sanitizer build.

    LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)" \\
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \\
      python tests/fuzz/check_conformance.py ../shared/conformance --jobs 2 --report build/conformance.json

Each file MANIFEST.tsv lists (all must exist) goes through `codec.open` from its path (MP4 slice
data read back from the file, as users open files) and every frame's slice headers, scaling
matrices, macroblocks, residual and coefficients with the fuzz harness's shape and range checks
(tests/conformance.py's `parse_stream`, in its supervised worker processes). A file that parses,
is refused (`UnsupportedStream`) or found damaged (`CorruptStream`) is fine; anything else fails:
another exception, a worker that dies (a crash, a sanitizer report, printed on stderr), a file
past --timeout. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the conformance runner
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tools/: the fuzz harness's frame checks

from conformance import CONFORMANCE, CORRUPT, OK, REFUSED, default_jobs, manifest, parse_stream, run_streams  # noqa: E402


def parse_only(path: Path):  # noqa: ANN201 - a StreamReport
    return parse_stream(path)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, nargs="?", default=CONFORMANCE)
    parser.add_argument("--jobs", "-j", type=int, default=default_jobs())
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S", help="seconds per file (default 600)")
    parser.add_argument("--report", type=Path, help="write every file's outcome here (JSON)")
    args = parser.parse_args(argv)

    names = manifest(args.directory)
    files = [args.directory / name for name in names]
    missing = [str(f) for f in files if not f.is_file()]
    if not names or missing:
        print(f"check_conformance: the conformance streams are missing at {args.directory} "
              f"({len(missing)} of {len(names)} listed files absent)", file=sys.stderr)
        return 1
    started = time.monotonic()
    reports = run_streams(files, jobs=max(1, args.jobs), timeout=args.timeout, check=parse_only)
    elapsed = time.monotonic() - started
    counts = collections.Counter(r.outcome for r in reports.values())
    frames = sum(r.parsed_frames for r in reports.values())
    print(f"conformance: {len(reports)} files in {elapsed:.0f} s: "
          + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + f"; {frames} frames parsed", flush=True)
    failures = {path: r for path, r in reports.items() if r.outcome not in (OK, REFUSED, CORRUPT)}
    for path, r in failures.items():
        print(f"  FAILURE ({r.outcome}): {path}\n{r.message}", flush=True)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"elapsed_s": round(elapsed, 1), "counts": dict(counts),
                                           "files": {p: asdict(r) for p, r in reports.items()}}, indent=1) + "\n")
    return 1 if failures or len(reports) != len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
