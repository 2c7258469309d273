"""Process and file plumbing shared by the CLIs: durable renames, the torch device to run on,
and the ranks torchrun hands a process."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

__all__ = ["atomic_write", "fsync_dir", "resolve_device", "stderr_is_terminal", "torchrun_env"]


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
