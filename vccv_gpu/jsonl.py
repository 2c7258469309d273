"""Append-only JSON-lines files that survive kills: caption's --out file and the feature store's
per-rank index and error logs. Each record is one line ending in a newline, appended and fsynced
by `Appender`. A kill mid-append leaves a torn last line (no newline yet): readers ignore it and
`repair` cuts it off before anyone appends again. A damaged line anywhere else is not something a
kill does, so it is an error naming the file and the line."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Appender", "JsonlError", "rank_files", "read", "repair"]


class JsonlError(ValueError):
    """A JSON-lines file with a damaged line before its last."""


def _is_object(record: Any) -> bool:
    return isinstance(record, dict)


def read(path: Path, is_record: Callable[[Any], bool] = _is_object) -> list[dict[str, Any]]:
    """The records of `path` (none if it is missing), without a torn last line. Raises
    JsonlError for a line before the last that is not JSON or fails `is_record`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")[:-1]  # what follows the last newline is a torn line, or nothing
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            record = None
        if record is None or not is_record(record):
            raise JsonlError(f"{path}: line {number} is not a valid record; fix or remove it")
        records.append(record)
    return records


def repair(path: Path) -> bool:
    """Cuts a torn last line (the bytes after the last newline) off `path`, so that the next
    append starts a line of its own; returns whether there was one."""
    try:
        with open(path, "r+b") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return False
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())
            return True
    except FileNotFoundError:
        return False


def rank_files(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    """The files of `folder` whose names match `pattern` (its first group: the rank), by rank."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


class Appender:
    """Appends records to a JSON-lines file (created if missing), each batch in one write,
    flushed and fsynced, so a kill loses at most the batch being written. Repairs a torn last
    line first."""

    def __init__(self, path: Path) -> None:
        repair(path)
        self._file: TextIO = open(path, "a", encoding="utf-8")

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        # ASCII escapes: paths that are not valid UTF-8 (surrogate escapes) still encode.
        text = "".join(json.dumps(r) + "\n" for r in records)
        if text:
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
