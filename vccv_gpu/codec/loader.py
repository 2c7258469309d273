"""Batches of sampled clips, prepared by worker threads a bounded number of batches ahead.

    from vccv_gpu import codec
    loader = codec.ClipLoader(paths, batch_size=8, num_segments=20, size=224, device="cuda")
    for batch in loader:                  # len(loader) batches, in input order
        batch.iframes                     # uint8   [B, N, 3, size, size] on `device`
        batch.residuals                   # float16 [B, N, 3, size, size] on `device`
        batch.paths                       # the B clips that sampled cleanly, in input order
        for err in batch.errors:          # the clips of this batch that could not be read
            print(f"skipped {err.path}: {err.reason}")

Design: `workers` threads run `sample_clip` (the parser and the decoders release the GIL) for
`device`, with that device's decoder and residual reconstruction (`sample.default_backends`:
NVDEC and the residual kernels on CUDA, PyAV and the parser elsewhere); the consumer stacks each
batch on `device`. A window of submitted clips bounds the work ahead: when the consumer asks for
batch k, the clips of batches k .. k + prefetch are submitted, so while it holds batch k at most
`prefetch` further batches are being prepared or waiting; memory is bounded by the prefetch
depth, not by the number or length of the videos. A clip that fails with `codec.StreamError`
(unsupported or corrupt video) or `OSError` (missing file, ...) becomes a `ClipError` of its
batch and the batch goes on without it; other exceptions (bugs, bad arguments) propagate to the
consumer. Stopping early (`break`, or `close()` on the iterator) cancels the clips not started;
the worker threads finish the clip they are on and exit.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from ..runtime import stderr_is_terminal
from .demux import Source
from .errors import StreamError
from .plan import RESIDUAL_MODES
from .sample import ClipSample, sample_clip

__all__ = ["ClipBatch", "ClipError", "ClipLoader", "sample_or_error"]

THREAD_NAME_PREFIX = "ClipLoader"


@dataclass(frozen=True)
class ClipError:
    """A clip that could not be sampled: `path` as given, `reason` what was wrong, `kind` the
    exception's class name (e.g. "CorruptStream", "UnsupportedStream", "FileNotFoundError")."""

    path: Source
    reason: str
    kind: str = ""


def sample_or_error(path: Source, **options: Any) -> ClipSample | ClipError:
    """`sample_clip(path, **options)`, or the ClipError that names the clip when it is an
    unreadable video (`codec.StreamError`) or file (`OSError`); other exceptions propagate."""
    try:
        return sample_clip(path, **options)
    except StreamError as e:
        return ClipError(path, e.reason, type(e).__name__)
    except OSError as e:
        return ClipError(path, str(e), type(e).__name__)


@dataclass
class ClipBatch:
    """One batch of a `ClipLoader`: the clips that sampled cleanly, stacked, and the errors.

    `samples[i]` describes `paths[i]`; its `iframes` / `residuals` are views of
    `iframes[i]` / `residuals[i]` (on `device`). A batch whose clips all failed has B = 0.
    """

    paths: list[Source]
    iframes: torch.Tensor               # uint8   [B, N, 3, size, size]
    residuals: torch.Tensor             # float16 [B, N, 3, size, size]
    samples: list[ClipSample]
    errors: list[ClipError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


class ClipLoader:
    """An iterable of `ClipBatch`es of `sample_clip(path, num_segments, size, residual)`.

    Args:
        paths: the clips (file paths, or bytes of a file in memory), batched in this order.
        batch_size: clips per batch (the last batch may be shorter).
        num_segments, size, residual, keep_aspect: as for `codec.sample_clip`.
        device: where the tensors are made (a CUDA device: by NVDEC and the residual kernels) and stacked.
        workers: threads running `sample_clip`.
        prefetch: batches prepared ahead of the one the consumer holds (0: none).
        progress: a tqdm bar over clips; None = on when stderr is a terminal and there is
            more than one batch.

    Example:
        >>> loader = ClipLoader(["a.mp4", "b.mp4", "c.mp4"], batch_size=2, num_segments=4,
        ...                     size=112, workers=2, prefetch=1)
        >>> len(loader)
        2
        >>> for batch in loader:
        ...     model(batch.iframes.float() / 255, batch.residuals.float())
        ...     for err in batch.errors:
        ...         print("skipped", err.path, err.reason)

    Each `iter(loader)` starts fresh worker threads; they end with the iteration, also when
    the consumer stops early (`break`, or `close()` on the iterator).
    """

    def __init__(self, paths: Sequence[Source], batch_size: int = 8, num_segments: int = 20,
                 size: int = 224, device: str | torch.device = "cpu", workers: int = 2,
                 residual: str = "middle", prefetch: int = 2, progress: bool | None = None,
                 keep_aspect: bool = False) -> None:
        if isinstance(paths, (str, bytes, bytearray, memoryview)):
            raise TypeError("paths must be a sequence of clips, not a single clip")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        if residual not in RESIDUAL_MODES:
            raise ValueError(f"residual must be one of {RESIDUAL_MODES}, got {residual!r}")
        self.paths: list[Source] = list(paths)
        self.batch_size = int(batch_size)
        self.num_segments = int(num_segments)
        self.size = int(size)
        self.device = torch.device(device)
        self.workers = int(workers)
        self.residual = residual
        self.prefetch = int(prefetch)
        self.progress = progress
        self.keep_aspect = bool(keep_aspect)

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch_size)

    def _show_progress(self) -> bool:
        if self.progress is not None:
            return bool(self.progress)
        return stderr_is_terminal() and len(self) > 1

    def _sample(self, path: Source) -> ClipSample | ClipError:
        """Runs in a worker thread."""
        return sample_or_error(path, num_segments=self.num_segments, size=self.size, residual=self.residual,
                               device=self.device, keep_aspect=self.keep_aspect)

    def _assemble(self, paths: list[Source], results: list[ClipSample | ClipError]) -> ClipBatch:
        good = [(p, r) for p, r in zip(paths, results) if isinstance(r, ClipSample)]
        errors = [r for r in results if isinstance(r, ClipError)]
        n, s = self.num_segments, self.size
        if good:
            iframes = torch.stack([r.iframes for _, r in good]).to(self.device)
            residuals = torch.stack([r.residuals for _, r in good]).to(self.device)
        else:
            iframes = torch.empty((0, n, 3, s, s), dtype=torch.uint8, device=self.device)
            residuals = torch.empty((0, n, 3, s, s), dtype=torch.float16, device=self.device)
        samples = [dataclasses.replace(r, iframes=iframes[i], residuals=residuals[i])
                   for i, (_, r) in enumerate(good)]
        return ClipBatch(paths=[p for p, _ in good], iframes=iframes, residuals=residuals,
                         samples=samples, errors=errors)

    def __iter__(self) -> Iterator[ClipBatch]:
        from tqdm import tqdm

        bs, total = self.batch_size, len(self.paths)
        bar: Any = tqdm(total=total, unit="clip", desc="sampling", disable=not self._show_progress(),
                        dynamic_ncols=True)
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=THREAD_NAME_PREFIX)
        window: deque[list[Future[ClipSample | ClipError]]] = deque()  # batches submitted, in order
        submitted = 0  # batches submitted so far
        n_errors = 0
        bar_lock = threading.Lock()  # done-callbacks run in the worker threads

        def tick(f: Future[Any]) -> None:
            if not f.cancelled():
                with bar_lock:
                    bar.update(1)

        try:
            for k in range(len(self)):
                # Batches k .. k + prefetch in flight: `prefetch` ahead of the one handed out next.
                while submitted < min(len(self), k + 1 + self.prefetch):
                    chunk = self.paths[submitted * bs:(submitted + 1) * bs]
                    futures = [pool.submit(self._sample, p) for p in chunk]
                    for f in futures:
                        f.add_done_callback(tick)
                    window.append(futures)
                    submitted += 1
                futures = window.popleft()
                results = [f.result() for f in futures]
                del futures
                batch = self._assemble(self.paths[k * bs:(k + 1) * bs], results)
                del results
                if batch.errors:
                    n_errors += len(batch.errors)
                    with bar_lock:
                        bar.set_postfix(errors=n_errors, refresh=False)
                yield batch
                del batch
        finally:
            for futures in window:
                for f in futures:
                    f.cancel()
            window.clear()
            # Not waiting: a thread on a long clip finishes it and exits, the consumer goes on.
            pool.shutdown(wait=False, cancel_futures=True)
            with bar_lock:
                bar.close()
