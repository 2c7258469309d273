"""Runs every stream of the conformance set through the parser once, for the sanitizer build.

    LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)" \\
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \\
      python tests/fuzz/check_conformance.py ../shared/conformance --jobs 2 --report build/conformance.json

Each file goes through `codec.open` (from its path, as users open files: MP4 slice data is read
back from the file) and, for every frame, `slice_headers`, `scaling_matrices`, `macroblocks`,
`residual` and `coefficients`, with the fuzz harness's shape and range checks. A file that
parses, is refused (`UnsupportedStream`) or found damaged (`CorruptStream`, when opened or in
any frame) is fine; anything else fails: another exception, a result of the wrong shape, a
worker process that dies (crash, sanitizer report), a file that takes longer than --timeout.
The files are those MANIFEST.tsv lists (each must exist), else every file with a video suffix;
a missing or empty directory fails. Files run in worker processes, so a crash names its file
and the others still run. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = frozenset({".264", ".h264", ".jsv", ".26l", ".jvt", ".avc", ".h26l", ".mp4", ".m4v", ".mov", ".mkv",
                      ".3gp", ".ts"})


def conformance_files(directory: Path) -> list[Path]:
    """MANIFEST.tsv's files (all must exist), or every video file under `directory`."""
    if not directory.is_dir():
        raise SystemExit(f"check_conformance: {directory} is not a directory (the conformance streams are "
                         "expected at ../shared/conformance beside the clone)")
    manifest = directory / "MANIFEST.tsv"
    if manifest.is_file():
        rows = [line.split("\t")[0] for line in manifest.read_text().splitlines()[1:] if line.strip()]
        files = [directory / name for name in rows]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise SystemExit(f"check_conformance: {len(missing)} files of {manifest} are missing: "
                             + ", ".join(missing[:5]))
    else:
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise SystemExit(f"check_conformance: no video files in {directory}")
    return files


def check_file(path: str) -> dict:
    """The outcome of one file: ok / truncated / refused / corrupt, or failure (with detail)."""
    from vccv_gpu import codec
    from vccv_gpu.codec.fuzz.harness import _check_frame

    result: dict = {"file": path, "frames": 0, "rejected": 0}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation: reported through `truncated`
            stream = codec.open(path)
    except codec.UnsupportedStream as e:
        return {**result, "outcome": "refused", "detail": str(e)}
    except codec.CorruptStream as e:
        return {**result, "outcome": "corrupt", "detail": str(e)}
    except Exception:  # noqa: BLE001 - anything else is what this check looks for
        return {**result, "outcome": "failure", "detail": traceback.format_exc()}
    outcome = "truncated" if stream.truncated else "ok"
    with stream:
        for frame in stream.frames:
            i = frame.index
            try:
                stream.slice_headers(i)
                stream.scaling_matrices(i)
                _check_frame(stream, stream.macroblocks(i), stream.residual(i), stream.coefficients(i))
                result["frames"] += 1
            except codec.UnsupportedStream as e:
                outcome = "refused"
                result["rejected"] += 1
                result.setdefault("detail", f"frame {i}: {e}")
            except codec.CorruptStream as e:
                outcome = "corrupt"
                result["rejected"] += 1
                result.setdefault("detail", f"frame {i}: {e}")
            except Exception:  # noqa: BLE001
                return {**result, "outcome": "failure", "detail": f"frame {i}: {traceback.format_exc()}"}
    return {**result, "outcome": outcome}


def worker() -> int:
    """Reads file paths from stdin, answers one JSON line per file on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the answer channel
    for line in sys.stdin:
        path = line.rstrip("\n")
        started = time.monotonic()
        result = check_file(path)
        result["seconds"] = round(time.monotonic() - started, 2)
        out.write(json.dumps(result) + "\n")
        out.flush()
    return 0


class Worker:
    def __init__(self, log_dir: Path, number: int) -> None:
        self.log = log_dir / f"worker{number}-{time.monotonic_ns()}.log"
        self.stderr = self.log.open("wb")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1, env=env)
        self.file: str | None = None
        self.started = 0.0

    def send(self, path: str) -> None:
        self.file, self.started = path, time.monotonic()
        assert self.proc.stdin is not None
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()

    def stderr_tail(self, limit: int = 6000) -> str:
        return self.log.read_bytes()[-limit:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


def run(files: list[Path], jobs: int, timeout: float) -> list[dict]:
    """Each file once, in `jobs` supervised worker processes; a worker that dies or hangs is
    replaced and its file reported as a failure."""
    import selectors

    # Largest first, so that the workers finish together.
    pending = collections.deque(str(f) for f in sorted(files, key=lambda f: -f.stat().st_size))
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vccv-conformance-") as tmp:
        workers: list[Worker] = []
        selector = selectors.DefaultSelector()

        def start(number: int) -> None:
            w = Worker(Path(tmp), number)
            workers.append(w)
            assert w.proc.stdout is not None
            selector.register(w.proc.stdout, selectors.EVENT_READ, w)
            feed(w)

        def feed(w: Worker) -> None:
            if pending:
                w.send(pending.popleft())
            else:
                w.file = None

        def retire(w: Worker, outcome: str, detail: str) -> None:
            selector.unregister(w.proc.stdout)
            w.stop()
            results.append({"file": w.file, "outcome": "failure", "kind": outcome, "detail": detail,
                            "stderr": w.stderr_tail()})
            print(f"FAILURE ({outcome}): {w.file}", file=sys.stderr, flush=True)
            workers.remove(w)
            if pending:
                start(len(results))

        for number in range(min(jobs, len(pending))):
            start(number)
        while any(w.file is not None for w in workers):
            for key, _ in selector.select(timeout=1.0):
                w: Worker = key.data
                line = w.proc.stdout.readline()
                if not line:  # the worker died in the middle of its file
                    code = w.proc.wait()
                    retire(w, "crash", f"worker exited with status {code} (signal {-code})" if code < 0
                           else f"worker exited with status {code}")
                    continue
                result = json.loads(line)
                if result["outcome"] == "failure":
                    result["kind"] = "exception"
                    print(f"FAILURE (exception): {w.file}\n{result['detail']}", file=sys.stderr, flush=True)
                results.append(result)
                feed(w)
            now = time.monotonic()
            for w in list(workers):
                if w.file is not None and now - w.started > timeout:
                    retire(w, "hang", f"no result after {timeout:g} s")
        for w in workers:
            selector.unregister(w.proc.stdout)
            assert w.proc.stdin is not None
            w.proc.stdin.close()
            w.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, nargs="?", default=ROOT.parent / "shared/conformance")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S", help="seconds per file (default 600)")
    parser.add_argument("--report", type=Path, help="write every file's outcome here (JSON)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker()

    files = conformance_files(args.directory)
    started = time.monotonic()
    results = run(files, max(1, args.jobs), args.timeout)
    elapsed = time.monotonic() - started
    counts = collections.Counter(r["outcome"] for r in results)
    frames = sum(r.get("frames", 0) for r in results)
    sanitizer = "asan" in os.environ.get("LD_PRELOAD", "")
    print(f"conformance: {len(results)} files in {elapsed:.0f} s{' (sanitizer build)' if sanitizer else ''}: "
          + ", ".join(f"{k} {counts[k]}" for k in ("ok", "truncated", "refused", "corrupt", "failure"))
          + f"; {frames} frames decoded", flush=True)
    failures = [r for r in results if r["outcome"] == "failure"]
    for r in failures:
        print(f"  FAILURE ({r['kind']}): {r['file']}\n{r['detail']}\n{r.get('stderr', '')}", flush=True)
    if len(results) != len(files):
        print(f"  ERROR: {len(files)} files, {len(results)} results", flush=True)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"elapsed_s": round(elapsed, 1), "sanitizer": sanitizer,
                                           "counts": dict(counts), "files": results}, indent=2) + "\n")
    return 1 if failures or len(results) != len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
