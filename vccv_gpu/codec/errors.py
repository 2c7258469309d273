"""Errors raised for videos the parser cannot read."""

from __future__ import annotations

import re


class StreamError(Exception):
    """A video that cannot be parsed. `path` names it; `reason` says what was wrong."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class UnsupportedStream(StreamError):
    """Valid video the parser does not handle: not H.264, interlaced, not 4:2:0 8-bit, FMO/ASO."""


class TruncatedStreamWarning(UserWarning):
    """A video cut short (an interrupted download or copy): what is complete before the cut is read.
    A category of its own, so that callers can filter or catch it and the CLIs show it on one line."""


class CorruptStream(StreamError):
    """Data that breaks the H.264 syntax or semantics; `decode_index` names the picture if known."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(reason, path)
        match = re.match(r"picture (\d+) \(decoding order\)", reason)
        self.decode_index: int | None = int(match.group(1)) if match else None
