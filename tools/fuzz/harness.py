"""The target each case runs (everything a user of codec.open can call), the worker processes
that run cases, and the supervisor that restarts them and blames failures."""

from __future__ import annotations

import collections
import importlib
import importlib.util
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .corpus import CLIPS, load_clips
from .mutations import make_case

# ------------------------------------------------------------------------------------------------
# The target: everything a user of codec.open can call on a stream
# ------------------------------------------------------------------------------------------------


class InvalidResult(AssertionError):
    """A parse result outside its documented shape or range."""


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidResult(what)


def check_frame(stream: Any, mb: Any, res: Any, coeffs: Any) -> None:
    import numpy as np

    h16, w16 = stream.coded_height // 16, stream.coded_width // 16
    for name in ("mb_type", "qp", "cbp", "intra_size", "intra_chroma_pred"):
        _check(getattr(mb, name).shape == (h16, w16), f"{name} shape {getattr(mb, name).shape} != {(h16, w16)}")
    _check(mb.mv.shape == (2, 4 * h16, 4 * w16, 2), f"mv shape {mb.mv.shape}")
    _check(mb.ref_idx.shape == (2, 4 * h16, 4 * w16), f"ref_idx shape {mb.ref_idx.shape}")
    _check(mb.intra_pred.shape == (4 * h16, 4 * w16), f"intra_pred shape {mb.intra_pred.shape}")
    if mb.mb_type.size:
        _check(0 <= mb.mb_type.min() and mb.mb_type.max() <= 4, "mb_type outside 0..4")
        _check(0 <= mb.qp.min() and mb.qp.max() <= 51, f"qp outside 0..51: {mb.qp.min()}..{mb.qp.max()}")
        _check(-1 <= mb.ref_idx.min() and mb.ref_idx.max() <= 31, "ref_idx outside -1..31")
        _check(-1 <= mb.intra_pred.min() and mb.intra_pred.max() <= 8, "intra_pred outside -1..8")
        _check(bool(np.isin(mb.intra_size, (0, 4, 8, 16)).all()), "intra_size not 0, 4, 8 or 16")
        _check(-1 <= mb.intra_chroma_pred.min() and mb.intra_chroma_pred.max() <= 3, "intra_chroma_pred outside -1..3")
        predicted = (mb.mb_type == 0) == (mb.intra_size > 0)  # intra (not I_PCM) <=> a size
        _check(bool(predicted.all()), "intra_size set outside intra macroblocks or missing in one")
    ch, cw = stream.coded_height, stream.coded_width
    _check(res.y.shape == (ch, cw) and res.u.shape == (ch // 2, cw // 2) and res.v.shape == (ch // 2, cw // 2),
           f"residual shapes {res.y.shape} {res.u.shape} {res.v.shape} for {cw}x{ch}")
    _check(res.y.dtype == np.int16, "residual dtype")
    for positions, size in ((coeffs.positions4, 4), (coeffs.positions8, 8)):
        if len(positions):
            plane, x, y = positions[:, 0], positions[:, 1], positions[:, 2]
            _check(bool(((plane >= 0) & (plane <= 2)).all()), "coefficient plane outside 0..2")
            width = np.where(plane == 0, cw, cw // 2)
            height = np.where(plane == 0, ch, ch // 2)
            _check(bool(((x >= 0) & (x + size <= width) & (y >= 0) & (y + size <= height)).all()),
                   f"{size}x{size} coefficient block outside its plane")


_case_dir: Any = None  # this worker's folder for cases that go through a file


def _as_file(data: bytes) -> Path:
    """`data` written to this worker's case file (created on first use, removed at exit)."""
    global _case_dir
    if _case_dir is None:
        import tempfile

        _case_dir = tempfile.TemporaryDirectory(prefix="vccv-fuzz-")
    path = Path(_case_dir.name) / "case.mp4"
    path.write_bytes(data)
    return path


def parse_all(data: bytes, case: int | None = None) -> tuple[str, int, int]:
    """codec.open, then every frame's headers, macroblocks, residual and coefficients. Returns
    (outcome, frames parsed, frames rejected); outcome is "parsed" when every frame parsed, else
    "corrupt" or "unsupported". Odd-numbered MP4 cases are opened from a file, so that the
    parser reads their slice data back from it (Stream.set_source_file)."""
    from vccv_gpu import codec

    source: bytes | Path = data
    if case is not None and case % 2 and data[4:8] == b"ftyp":
        source = _as_file(data)
    try:
        stream = codec.open(source)
    except codec.CorruptStream:
        return "corrupt", 0, 0
    except codec.UnsupportedStream:
        return "unsupported", 0, 0
    outcome, good, bad = "parsed", 0, 0
    with stream:
        _check(len(stream.frames) > 0, "a stream without frames opened")
        for frame in stream.frames:
            i = frame.index
            try:
                stream.slice_headers(i)
                stream.scaling_matrices(i)
                residual, coefficients = stream.residual(i), stream.coefficients(i)  # one parse for all three
                check_frame(stream, stream.macroblocks(i), residual, coefficients)
                good += 1
            except codec.CorruptStream as e:
                _check(e.decode_index == frame.decode_index, f"frame {i}'s error names another picture: {e}")
                outcome, bad = "corrupt", bad + 1
            except codec.UnsupportedStream:
                outcome = "unsupported" if outcome == "parsed" else outcome
                bad += 1
    return outcome, good, bad


def _load_target(spec: str | None) -> Callable[..., Any]:
    """"module:function" or "path/file.py:function" (a test hook); None: parse_all."""
    if not spec:
        return parse_all
    where, _, name = spec.rpartition(":")
    if where.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(f"_fuzz_target_{abs(hash(where))}", where)
        assert module_spec is not None and module_spec.loader is not None, where
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


# ------------------------------------------------------------------------------------------------
# Worker: runs the cases it is sent, one JSON line per result
# ------------------------------------------------------------------------------------------------


def _asan_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return "asan" in os.environ.get("LD_PRELOAD", "")


def _worker(clips_dir: str | None, seed: int, target_spec: str | None, memory_limit_mb: int) -> int:
    # The protocol gets a private copy of stdout; prints in the target land on stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    warnings.simplefilter("ignore")  # truncation warnings: the outcome says what happened
    try:
        import av
        av.logging.set_level(None)
    except Exception:  # noqa: BLE001 - logging is cosmetic
        pass
    if memory_limit_mb > 0 and not _asan_loaded():  # ASan reserves terabytes of address space
        import resource
        limit = memory_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    target = _load_target(target_spec)
    corpus = load_clips([Path(clips_dir) / name for name, _ in CLIPS]) if clips_dir else []
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        job = json.loads(line)
        number = job["case"]
        names: list[str] = []
        try:
            if "file" in job:
                data = Path(job["file"]).read_bytes()
            else:
                case = make_case(corpus, seed, number)
                data, names = case.data, case.mutations
            os.write(2, b"\n@@fuzz-case %d@@\n" % number)  # the supervisor attributes stderr by these
            result = target(data, number)
            outcome, good, bad = (result, 0, 0) if isinstance(result, str) else result
            reply: dict[str, Any] = {"case": number, "outcome": outcome, "frames": [good, bad], "m": names}
        except BaseException as e:  # noqa: BLE001 - every other exception is what we are looking for
            kind = "invalid-result" if isinstance(e, InvalidResult) else "exception"
            reply = {"case": number, "outcome": "failure", "kind": kind, "m": names,
                     "detail": "".join(traceback.format_exception(e)[-12:])}
        out.write(json.dumps(reply) + "\n")
    return 0


# ------------------------------------------------------------------------------------------------
# Supervisor
# ------------------------------------------------------------------------------------------------

_SANITIZER = re.compile(rb"ERROR: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|runtime error: ")
_SANITIZER_TEXT = re.compile(_SANITIZER.pattern.decode())
_MARKER = re.compile(rb"\n@@fuzz-case (\d+)@@\n")
_PIPELINE = 4  # cases queued per worker ahead of the one running


class _Worker:
    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path, number: int) -> None:
        self.log_path = log_dir / f"worker{number}.log"
        self.log = open(self.log_path, "w+b")  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, start_new_session=True)
        self.pending: collections.deque[int] = collections.deque()
        self.buffer = b""
        self.ready = False
        self.since = time.monotonic()
        self.log_seen = 0
        self.unread = b""
        os.set_blocking(self.proc.stdout.fileno(), False)

    def send(self, job: dict[str, Any]) -> bool:
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def stderr_of(self, number: int) -> bytes:
        """What the worker wrote to stderr while running case `number` (and the cases before it
        that were not asked about), now that its result is in."""
        size = os.fstat(self.log.fileno()).st_size
        if size > self.log_seen:
            self.log.seek(self.log_seen)
            self.unread += self.log.read(size - self.log_seen)
            self.log_seen = size
        end = len(self.unread)
        for marker in _MARKER.finditer(self.unread):
            if int(marker.group(1)) > number:  # a later case has started: its output stays
                end = marker.start()
                break
        text, self.unread = self.unread[:end], self.unread[end:]
        return text

    def stderr_tail(self, limit: int) -> str:
        """The end of the worker's stderr, from the start of the last case it began."""
        size = os.fstat(self.log.fileno()).st_size
        self.log.seek(max(0, size - limit))
        text = self.log.read()
        last = None
        for last in _MARKER.finditer(text):
            pass
        return text[last.end() if last else 0:].decode("utf-8", "replace")

    def kill(self) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rc = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.log.close()
        return rc


def _excerpt(text: str, limit: int = 6000) -> str:
    """The sanitizer report in a worker's stderr (from its first line), else the end of it."""
    match = _SANITIZER_TEXT.search(text)
    if match is None:
        return text[-limit:]
    report = text[text.rfind("\n", 0, match.start()) + 1:]
    if len(report) > limit:
        summary = re.search(r"^SUMMARY: .*$", report, re.MULTILINE)
        report = report[:limit] + "\n...\n" + (summary.group(0) if summary else "")
    return report


def signature(failure: dict[str, Any]) -> str:
    """What tells failures apart: the sanitizer's verdict and the first frame in csrc/, or the
    exception and where it was raised, or how the worker ended."""
    text = failure.get("stderr") or ""
    for pattern in (r"(runtime error: [^\n]*)", r"ERROR: \w+Sanitizer: ([\w-]+)"):
        found = re.search(pattern, text)
        if found:
            frame = re.search(r"#\d+ 0x[0-9a-f]+ in (\S+) (\S*csrc/[^\s:]+:\d+)", text)
            where = f" in {frame.group(1)} {Path(frame.group(2)).name}" if frame else ""
            return f"{failure['kind']}: {found.group(1).strip()}{where}"
    detail = (failure.get("detail") or "").strip().splitlines()
    if failure["kind"] in ("exception", "invalid-result") and detail:
        places = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', failure.get("detail") or "")
        where = f" at {Path(places[-1][0]).name}:{places[-1][1]} ({places[-1][2]})" if places else ""
        return f"{failure['kind']}: {detail[-1][:200]}{where}"
    return f"{failure['kind']}: {detail[-1] if detail else ''}"


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with status {rc}"


def _supervise(jobs: Iterator[dict[str, Any]], worker_argv: list[str], n_workers: int, timeout: float,
               on_result: Callable[[dict[str, Any]], None], log_dir: Path, startup_timeout: float = 120.0) -> None:
    """Runs `jobs` on `n_workers` worker processes; calls `on_result` with each result, where a
    dead or hung worker becomes a "failure" result for the case it was running."""
    env = dict(os.environ)
    # Workers run `python -m tools.fuzz` from wherever: the repository root must be importable.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    if "asan" in env.get("LD_PRELOAD", "") and "max_allocation_size_mb" not in env.get("ASAN_OPTIONS", ""):
        # A hostile size must not make the worker take all of the machine's memory.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "max_allocation_size_mb=4096"]))
    selector = selectors.DefaultSelector()
    requeued: collections.deque[dict[str, Any]] = collections.deque()
    in_flight: dict[int, dict[str, Any]] = {}
    spawned = 0
    startup_failures = 0

    def spawn() -> _Worker:
        nonlocal spawned
        spawned += 1
        w = _Worker(worker_argv, env, log_dir, spawned)
        selector.register(w.proc.stdout, selectors.EVENT_READ, w)
        return w

    def retire(w: _Worker, kind: str, detail: str) -> _Worker:
        """Ends worker w; its running case fails with `kind`, the ones queued behind it rerun."""
        nonlocal startup_failures
        selector.unregister(w.proc.stdout)
        if w.proc.poll() is None:
            w.proc.kill()  # a hung worker: its stderr is complete once it is gone
        rc = w.proc.wait()
        tail = _excerpt(w.stderr_tail(1 << 20))
        w.kill()
        if not w.ready:  # died or stuck before its first case: not a case's fault
            startup_failures += 1
            if startup_failures >= 3:
                raise RuntimeError(f"the fuzz worker does not start ({_describe_exit(rc)}):\n{tail}")
        elif w.pending:
            number = w.pending.popleft()
            job = in_flight.pop(number)
            detail = detail or f"worker {_describe_exit(rc)}"
            on_result({"case": number, "outcome": "failure", "kind": kind, "detail": detail, "stderr": tail,
                       "file": job.get("file")})
        requeued.extendleft(reversed([in_flight.pop(n) for n in w.pending]))
        return spawn()

    workers = [spawn() for _ in range(n_workers)]
    finished = False
    try:
        exhausted = False
        while True:
            for w in workers:
                while len(w.pending) < _PIPELINE:
                    if requeued:
                        job = requeued.popleft()
                    elif not exhausted:
                        job = next(jobs, None)
                        if job is None:
                            exhausted = True
                            break
                    else:
                        break
                    in_flight[job["case"]] = job
                    if not w.pending:  # an idle worker's clock starts with its new case, not its last reply
                        w.since = time.monotonic()
                    w.pending.append(job["case"])
                    if not w.send(job):
                        break  # the dead worker is found by its closed stdout
            if exhausted and not requeued and not in_flight:
                break
            now = time.monotonic()
            waits = [(w.since + (timeout if w.ready else startup_timeout)) - now for w in workers if w.pending]
            events = selector.select(timeout=max(0.0, min(waits, default=1.0)))
            for key, _ in events:
                w = key.data
                try:
                    chunk = os.read(key.fileobj.fileno(), 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    workers[workers.index(w)] = retire(w, "crash", "")
                    continue
                w.buffer += chunk
                *lines, w.buffer = w.buffer.split(b"\n")
                for line in lines:
                    try:
                        reply = json.loads(line)
                    except ValueError:
                        continue  # not the protocol's (a library writing to the worker's stdout)
                    w.since = time.monotonic()
                    if reply.get("ready"):
                        w.ready, startup_failures = True, 0
                        continue
                    number = reply["case"]
                    if w.pending and w.pending[0] == number:
                        w.pending.popleft()
                    job = in_flight.pop(number, {})
                    reply["file"] = job.get("file")
                    report = w.stderr_of(number)
                    if _SANITIZER.search(report) and reply["outcome"] != "failure":
                        reply.update(outcome="failure", kind="sanitizer", detail="sanitizer report on stderr",
                                     stderr=_excerpt(report.decode("utf-8", "replace")))
                    on_result(reply)
            now = time.monotonic()
            for k, w in enumerate(workers):
                limit = timeout if w.ready else startup_timeout
                if w.pending and now - w.since > limit:
                    what = f"no result after {limit:g} s" + ("" if w.ready else " (worker start)")
                    workers[k] = retire(w, "hang" if w.ready else "crash", what)
        finished = True
    finally:  # also on KeyboardInterrupt: no worker outlives the campaign
        for w in workers:
            if finished:
                try:
                    w.proc.stdin.close()  # the worker ends at the end of its input
                    w.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            w.kill()
        selector.close()
