"""Process and file plumbing shared by the CLIs: durable renames, the torch device to run on,
and the ranks torchrun hands a training process (`Ranks`: DDP's set-up; captioning and extraction
scale on Ray Data instead, `vccv_gpu.ray_engine`)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, TextIO

import torch

__all__ = ["Ranks", "atomic_write", "fsync_dir", "plain_warnings", "resolve_device", "stderr_is_terminal",
           "torchrun_env"]

# Ranks that finish their share early wait this long at a barrier for the others. torchrun ends
# the whole group when one rank dies, so a long wait cannot hang a failed job, while PyTorch's
# default (30 minutes) would end a healthy one whose ranks got unequal work.
COLLECTIVE_TIMEOUT = timedelta(hours=48)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Writes a file so that readers see the old one or the complete new one: `write(f)` fills a
    temporary file in the same folder, which is fsynced and renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Makes a rename in `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stderr_is_terminal() -> bool:
    """Whether progress bars have a terminal to draw on (False for a closed or replaced stderr)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def plain_warnings() -> None:
    """Command lines show each warning as one 'warning: MESSAGE' line on stderr (through tqdm, so
    above any progress bar), without Python's category and source line. Only the CLIs' main()
    calls it: library callers keep ordinary warnings (and `warnings.catch_warnings` restores them)."""
    from tqdm import tqdm

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        tqdm.write(f"warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show


def resolve_device(choice: str = "auto", local_rank: int = 0) -> torch.device:
    """auto (cuda if available, else cpu), cpu, cuda or cuda:K; 'cuda' picks the local rank's GPU,
    which becomes the current CUDA device. Raises ValueError if CUDA is asked for but absent."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(choice)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def torchrun_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's RANK / WORLD_SIZE / LOCAL_RANK; (0, 1, 0)
    outside torchrun. Raises ValueError naming a variable that is not an integer."""
    values = []
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        text = os.environ.get(name)
        try:
            values.append(default if text is None else int(text))
        except ValueError:
            raise ValueError(f"environment variable {name}={text!r} is not an integer "
                             "(torchrun sets RANK, WORLD_SIZE and LOCAL_RANK)") from None
    rank, world_size, local_rank = values
    return rank, world_size, local_rank


@dataclass
class Ranks:
    """This process's place among torchrun's ranks, and the process group they share.

    `Ranks.join` reads torchrun's environment, picks the device (cuda:LOCAL_RANK for 'cuda') and,
    with more than one rank, starts the process group; `close` ends it (if this process started
    it). Outside torchrun it is one rank and no process group."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process started the process group (and ends it)
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (cpu for gloo)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def join(cls, device_choice: str = "auto", *, backend: str = "auto") -> tuple[Ranks, torch.device]:
        """(ranks, device). backend 'auto' is NCCL on CUDA devices and gloo on the CPU; 'gloo'
        keeps collectives on the CPU even on GPUs (for jobs whose only collectives are barriers
        and small sums: gloo waits for slow ranks without NCCL's watchdog). Raises ValueError
        for an unusable environment or device."""
        rank, size, local_rank = torchrun_env()
        device = resolve_device(device_choice, local_rank)
        if size <= 1:
            return cls(), device
        dist = torch.distributed
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        owns = not dist.is_initialized()
        if owns:
            options = {"device_id": device} if backend == "nccl" else {}
            dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT, **options)
        on = device if dist.get_backend() == "nccl" else torch.device("cpu")
        return cls(rank, size, local_rank, owns, on), device

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def sum(self, values: Sequence[int]) -> list[int]:
        """Element-wise sums of `values` over every rank (the values themselves on one rank)."""
        if not self.distributed:
            return list(values)
        total = torch.tensor(list(values), dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(total)
        return [int(v) for v in total.tolist()]

    def close(self) -> None:
        """Ends the process group if this process started it."""
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        self.owns_group = False
