"""`python -m tools.fuzz`: a fuzzing campaign against the parser over generated clips.

A small fixed set of seed clips (raw Annex B and MP4/Matroska, CAVLC and CABAC, baseline, main
and high profile, B-frames with spatial and temporal direct prediction, several slices, weighted
prediction, scaling matrices) is encoded once with `tools.clips.make_clip` and cached in
`--clips DIR`. Each case mutates one of them (case `n` of seed `s` always makes the same bytes):
bit flips, byte overwrites, insertions and deletions, truncations, slice splicing within and
across clips, mismatched parameter sets (another clip's SPS/PPS swapped in, or SPS, PPS and
slice header fields such as ids, sizes and reference counts rewritten), duplicated, dropped,
reordered and retyped NAL units, and (in containers) broken NAL length fields. Then
`codec.open(data)` and, for every frame, `slice_headers`, `macroblocks`, `residual` and
`coefficients` run; the results' shapes and ranges are checked.

A case may parse or raise `codec.CorruptStream` / `codec.UnsupportedStream`. Anything else is a
failure: another exception, a result outside its documented shape or range, a case that takes
longer than `--timeout` seconds (hang), a worker process that dies (segfault, abort,
sanitizer report) or a sanitizer report on its stderr. Cases run in worker subprocesses that
this process supervises and restarts, so every failure is reported with the case that caused
it; `--case N --seed S --clips DIR` reruns one case, `--save-failures DIR` writes the inputs,
`--replay FILE...` reruns saved inputs.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .corpus import CLIPS, IDR, PPS, SLICE, SPS, Clip, load_clips, make_clips, pps_fields, slice_fields, sps_fields
from .corpus import _encode as _encode  # re-exported for the tests
from .harness import _supervise, _worker, parse_all, signature
from .mutations import MUTATIONS, Case, make_case

__all__ = ["CLIPS", "MUTATIONS", "Case", "Clip", "IDR", "PPS", "SLICE", "SPS", "load_clips", "main", "make_case",
           "make_clips", "parse_all", "pps_fields", "run", "signature", "slice_fields", "sps_fields"]


# ------------------------------------------------------------------------------------------------
# Campaign
# ------------------------------------------------------------------------------------------------


def run(*, cases: int = 20000, seed: int = 0, hours: float | None = None, jobs: int | None = None,
        clips: str | os.PathLike | None = None, timeout: float = 10.0, case_numbers: Sequence[int] | None = None,
        replay: Sequence[str | os.PathLike] | None = None, save_failures: str | os.PathLike | None = None,
        target: str | None = None, memory_limit_mb: int = 4096, progress: bool = True,
        confirm: bool = True) -> dict[str, Any]:
    """Runs a campaign and returns its report (see `main`); `target` ("module:function" or
    "file.py:function", called as f(data, case) -> outcome) replaces `parse_all`, for testing
    the harness itself."""
    from tqdm import tqdm

    jobs = max(1, jobs or os.cpu_count() or 1)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vccv-fuzz-") as tmp:
        clips_dir = Path(clips) if clips is not None else Path(tmp) / "clips"
        replay_files = [str(Path(p).resolve()) for p in replay or []]
        corpus: list[Clip] = []
        if not replay_files:
            corpus = load_clips(make_clips(clips_dir))
        clip_time = time.monotonic() - started

        if replay_files:
            numbers: Iterable[int] = range(len(replay_files))
            total: int | None = len(replay_files)
        elif case_numbers is not None:
            numbers, total = list(case_numbers), len(case_numbers)
        elif hours is not None:
            deadline = time.monotonic() + hours * 3600
            numbers, total = _until(deadline), None
        else:
            numbers, total = range(cases), cases

        def job_list(numbers: Iterable[int]) -> Iterator[dict[str, Any]]:
            for n in numbers:
                yield {"case": n, "file": replay_files[n]} if replay_files else {"case": n}

        argv = [sys.executable, "-m", "tools.fuzz", "--worker", "--seed", str(seed),
                "--memory-limit", str(memory_limit_mb)]
        if not replay_files:
            argv += ["--clips", str(clips_dir)]
        if target:
            argv += ["--target", target]

        outcomes: collections.Counter[str] = collections.Counter()
        frames = [0, 0]
        by_mutation: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        failures: list[dict[str, Any]] = []
        # A live bar on a terminal; in a log (CI), a plain status line every 30 seconds.
        bar = tqdm(total=total, unit="case", desc="fuzz", disable=not (progress and sys.stderr.isatty()),
                   smoothing=0.05, mininterval=0.5, dynamic_ncols=True)
        log_every, last_log = 30.0, [time.monotonic()]
        shown_live = 20  # failures printed as they happen; all of them are in the summary

        def on_result(reply: dict[str, Any]) -> None:
            outcome = reply["outcome"]
            outcomes[outcome] += 1
            if outcome != "failure":
                frames[0] += reply["frames"][0]
                frames[1] += reply["frames"][1]
            for name in set(reply.get("m") or ()):
                by_mutation[name][outcome] += 1
            if outcome == "failure":
                failure = {k: reply[k] for k in ("case", "kind", "detail", "stderr", "file")
                           if reply.get(k) not in (None, "")}
                failures.append(failure)
                if len(failures) <= shown_live:
                    last = (reply.get("detail") or "").strip().splitlines()
                    bar.write(f"FAILURE case {reply['case']} ({reply['kind']}): {last[-1] if last else ''}"
                              + (" (more failures: see the summary)" if len(failures) == shown_live else ""),
                              file=sys.stderr)
                bar.set_postfix(failures=len(failures), refresh=False)
            bar.update(1)
            now = time.monotonic()
            if progress and bar.disable and now - last_log[0] >= log_every:
                last_log[0] = now
                done = sum(outcomes.values())
                print(f"fuzz: {done}{f'/{total}' if total else ''} cases, {len(failures)} failures, "
                      f"{done / (now - run_started):.0f} cases/s", file=sys.stderr, flush=True)

        run_started = time.monotonic()
        interrupted = False
        try:
            _supervise(job_list(numbers), argv, jobs, timeout, on_result, Path(tmp))
        except KeyboardInterrupt:
            interrupted = True
            confirm = False
        finally:
            bar.close()
        elapsed = time.monotonic() - run_started

        failures.sort(key=lambda f: f["case"])
        groups: dict[str, list[dict[str, Any]]] = {}
        for failure in failures:
            failure["signature"] = signature(failure)
            groups.setdefault(failure["signature"], []).append(failure)

        # The first crash or hang of each kind reruns alone in a fresh worker: is that case the cause?
        if confirm:
            firsts = [group[0] for group in groups.values() if group[0]["kind"] in ("crash", "hang")]
            for failure in firsts[:10]:
                again: list[dict[str, Any]] = []
                _supervise(job_list([failure["case"]]), argv, 1, timeout, again.append, Path(tmp))
                failure["reproduced"] = bool(again) and again[0].get("kind") == failure["kind"]

        for failure in failures:
            if replay_files:
                failure["input"] = failure.pop("file", None) or replay_files[failure["case"]]
                failure["reproduce"] = f"python -m tools.fuzz --replay {failure['input']}"
                continue
            failure.pop("file", None)
            case = make_case(corpus, seed, failure["case"])
            failure.update(clip=case.clip, mutations=case.description)
            failure["reproduce"] = (f"python -m tools.fuzz --seed {seed} --case {failure['case']}"
                                    + (f" --clips {clips}" if clips is not None else ""))
            if save_failures is not None:
                out = Path(save_failures)
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"seed{seed}-case{failure['case']}-{failure['kind']}{case.suffix}"
                path.write_bytes(case.data)
                failure["input"] = str(path)
                path.with_suffix(".txt").write_text(json.dumps(failure, indent=2) + "\n")

        done = sum(outcomes.values())
        return {
            "seed": seed,
            "cases": done,
            "parsed": outcomes["parsed"],
            "corrupt": outcomes["corrupt"],
            "unsupported": outcomes["unsupported"],
            "failed": outcomes["failure"],
            "frames_parsed": frames[0],
            "frames_rejected": frames[1],
            "failures": failures,
            "distinct_failures": [{"signature": sig, "count": len(group), "cases": [f["case"] for f in group[:50]]}
                                  for sig, group in groups.items()],
            "mutations": {name: dict(c) for name, c in sorted(by_mutation.items())},
            # The cases of a seed are the same wherever the seed clips are the same bytes.
            "clips": ([{"name": c.name, "bytes": len(c.data), "sha256": hashlib.sha256(c.data).hexdigest()[:16]}
                       for c in corpus] if not replay_files else replay_files),
            "jobs": jobs,
            "timeout_s": timeout,
            "clip_setup_s": round(clip_time, 2),
            "elapsed_s": round(elapsed, 2),
            "cases_per_s": round(done / elapsed, 1) if elapsed > 0 else None,
            "sanitizer": "asan" in os.environ.get("LD_PRELOAD", ""),
            "interrupted": interrupted,
        }


def _until(deadline: float) -> Iterator[int]:
    n = 0
    while time.monotonic() < deadline:
        yield n
        n += 1


def format_summary(report: dict[str, Any]) -> str:
    lines = [
        f"fuzz: {report['cases']} cases (seed {report['seed']}) in {report['elapsed_s']:.1f} s, "
        f"{report['cases_per_s']} cases/s on {report['jobs']} jobs"
        + (" (sanitizer build)" if report["sanitizer"] else "")
        + (" (interrupted)" if report["interrupted"] else ""),
        (f"  parsed {report['parsed']}, corrupt {report['corrupt']}, unsupported {report['unsupported']}, "
         f"failures {report['failed']}; frames parsed {report['frames_parsed']}, "
         f"rejected {report['frames_rejected']}"),
    ]
    shown = {f["case"]: f for f in report["failures"]}
    for group in report["distinct_failures"]:
        f = shown[group["cases"][0]]
        more = group["cases"][1:10]
        lines.append(f"  FAILURE x{group['count']}: {group['signature']}")
        lines.append(f"    first: case {f['case']}"
                     + (f" (reproduced alone: {'yes' if f['reproduced'] else 'no'})" if "reproduced" in f else "")
                     + (f"; also cases {', '.join(map(str, more))}{' ...' if group['count'] > 10 else ''}"
                        if more else ""))
        if f.get("mutations"):
            lines.append(f"    {f['clip']}: {'; '.join(f['mutations'])}")
        for key in ("input", "reproduce"):
            if f.get(key):
                lines.append(f"    {key}: {f[key]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.fuzz",
        description="Fuzz the H.264 parser: mutate generated seed clips (bit flips, insertions, deletions, "
                    "truncations, spliced slices, mismatched or rewritten SPS/PPS, duplicated, dropped and "
                    "reordered NAL units, broken NAL lengths) and check that every case parses or raises "
                    "CorruptStream/UnsupportedStream, without other exceptions, hangs or crashes. Cases run "
                    "in supervised worker processes. Exit status 1 if any case failed.")
    parser.add_argument("--cases", type=int, default=20000, help="number of cases (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed: the same seed makes the same cases")
    parser.add_argument("--hours", type=float, help="run for this long instead of a fixed number of cases")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--clips", metavar="DIR",
                        help="where the seed clips are made once and reused (default: a temporary directory)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="seconds a case may take before it counts as a hang (default 10)")
    parser.add_argument("--case", type=int, action="append", metavar="N", dest="case_numbers",
                        help="run only case N of the seed (repeatable): reproduces a reported failure")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run saved inputs instead of mutations")
    parser.add_argument("--report", metavar="FILE", help="write a JSON summary here")
    parser.add_argument("--save-failures", metavar="DIR", help="write each failing input (and a .txt note) here")
    parser.add_argument("--memory-limit", type=int, default=4096, metavar="MB",
                        help="address space limit of a worker without sanitizers (default 4096; 0: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)  # test hook: module:function or file.py:function
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args.clips, args.seed, args.target, args.memory_limit)
    if args.cases < 0 or args.jobs < 1 or args.timeout <= 0:
        parser.error("--cases must be >= 0, --jobs >= 1 and --timeout > 0")

    report = run(cases=args.cases, seed=args.seed, hours=args.hours, jobs=args.jobs, clips=args.clips,
                 timeout=args.timeout, case_numbers=args.case_numbers, replay=args.replay,
                 save_failures=args.save_failures, target=args.target, memory_limit_mb=args.memory_limit,
                 progress=not args.no_progress)
    print(format_summary(report), flush=True)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["failed"] else 0

