"""FFmpeg, through PyAV, as the oracle the parser is checked against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


@dataclass
class OracleFrame:
    pts: int | None
    type: str
    key: bool


@dataclass
class Oracle:
    width: int
    height: int
    profile: str
    frames: list[OracleFrame]  # output (display) order


def pyav_oracle(path: Path) -> Oracle:
    """What FFmpeg reports for a file: size, profile and every decoded frame in output order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [
            OracleFrame(f.pts, av.video.frame.PictureType(f.pict_type).name, bool(f.key_frame))
            for f in container.decode(stream)
        ]
        ctx = stream.codec_context
        return Oracle(ctx.width, ctx.height, ctx.profile, frames)
