"""VCCVConfig: the sizes and the variant of the VCCV captioning model (paper sections III, IV-A)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# The four rows of the paper's Tables I and II, from the baseline to the full model.
VARIANTS: tuple[str, ...] = ("iframe", "rae_no_gate_no_residual", "rae_no_gate", "rae")


@dataclass(frozen=True)
class VCCVConfig:
    """Model sizes; the defaults are the paper's (ResNet-152 I-frame and ResNet-18 residual
    features on a 7x7 grid, 20 frames, embedding 500, LSTM 512, dropout 0.5, captions <= 50 tokens).

    `variant` selects a row of Tables I/II (see `vccv_gpu.model.rae.RAE`). `gate_dim` is the
    inner size of Eq. 11 (W_Gt h + W_Gr A^c_r + W_GI V^c_I), which the paper does not state.
    """

    vocab_size: int
    d_i: int = 2048
    d_r: int = 512
    grid: tuple[int, int] = (7, 7)
    n_frames: int = 20
    embed: int = 500
    hidden: int = 512
    dropout: float = 0.5
    max_len: int = 50
    variant: str = "rae"
    gate_dim: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(self.grid))  # JSON gives a list
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if len(self.grid) != 2:
            raise ValueError(f"grid must be (height, width), got {self.grid!r}")
        sizes = {"vocab_size": self.vocab_size, "d_i": self.d_i, "d_r": self.d_r, "grid height": self.grid[0],
                 "grid width": self.grid[1], "n_frames": self.n_frames, "embed": self.embed,
                 "hidden": self.hidden, "max_len": self.max_len, "gate_dim": self.gate_dim}
        for name, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.vocab_size < 5:
            raise ValueError(f"vocab_size must cover the 4 special tokens and a word, got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def positions(self) -> int:
        """H x W, the number of spatial positions SAM attends over."""
        return self.grid[0] * self.grid[1]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VCCVConfig:
        fields: dict[str, Any] = json.loads(text)
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**fields)
