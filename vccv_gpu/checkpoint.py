"""Checkpoints: a trained captioning model as one self-contained directory.

    save_checkpoint("run/best", model, vocab, backbones=extractor, info={"epoch": 3})
    ckpt = load_checkpoint(resolve_checkpoint("run"))   # run/best; None -> the bundled demo
    ckpt.model, ckpt.vocab, ckpt.backbones, ckpt.info
    ckpt.sha256                                          # content hash: which model wrote an output
    v_i, a_r, best = ckpt.caption(batch.iframes, batch.residuals, beam=5)

Layout:
    config.json            {"format": 1, "model": VCCVConfig fields, "backbones": BackboneConfig or null, "info": {...}}
    model.safetensors      the VCCV weights
    vocab.json             the Vocabulary
    backbones.safetensors  the FeatureExtractor (when the checkpoint can caption raw video)

A checkpoint is written into a temporary sibling directory and renamed into place, so a reader
sees the old checkpoint or the new one, never a mix. Replacing an existing one takes two renames
(old out of the way, new in); a kill between them leaves only `.NAME.old-*`, which
`resolve_checkpoint` recovers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vccv_gpu.backbones import BackboneConfig, FeatureExtractor
from vccv_gpu.data import Vocabulary
from vccv_gpu.model import VCCV, VCCVConfig
from vccv_gpu.model.beam import Caption
from vccv_gpu.runtime import fsync_dir

__all__ = ["DEMO_CHECKPOINT", "FORMAT", "Checkpoint", "checkpoint_sha256", "load_checkpoint", "resolve_checkpoint",
           "save_checkpoint"]

FORMAT = 1
DEMO_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "demo"
_FILES = ("config.json", "model.safetensors", "vocab.json")


@dataclass
class Checkpoint:
    model: VCCV                          # in eval mode
    vocab: Vocabulary
    backbones: FeatureExtractor | None   # None: features must come from a feature store
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @functools.cached_property
    def sha256(self) -> str:
        """`checkpoint_sha256` of its folder ("" without one), read on first use: only outputs that
        name their model need it, not every load (a paper-sized checkpoint is hundreds of MB)."""
        return checkpoint_sha256(self.path) if self.path else ""

    def identity(self) -> dict[str, str]:
        """What output records say about the model that wrote them."""
        return {"checkpoint": str(self.path.resolve()) if self.path else "", "checkpoint_sha256": self.sha256}

    def caption(self, iframes: Tensor, residuals: Tensor, *, beam: int = 5,
                max_len: int | None = None) -> tuple[Tensor, Tensor, list[Caption]]:
        """Backbones and beam search over a batch of sampled clips (on the model's device):
        (v_i, a_r, the best Caption per clip). Needs backbones."""
        if self.backbones is None:
            raise ValueError(f"{self.path or 'the checkpoint'} has no backbones")
        with torch.inference_mode():
            v_i, a_r = self.backbones(iframes, residuals)
            best = [beams[0] for beams in self.model.generate(v_i, a_r, beam_size=beam, max_len=max_len)]
        return v_i, a_r, best


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path: str | os.PathLike[str], model: VCCV, vocab: Vocabulary,
                    backbones: FeatureExtractor | None = None, info: dict[str, Any] | None = None) -> Path:
    """Writes the checkpoint directory `path` atomically (replacing one that is there)."""
    from safetensors.torch import save

    path = Path(path)
    if len(vocab) != model.config.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} words, the model {model.config.vocab_size}")
    if backbones is not None:
        bc = backbones.config
        mc = model.config
        if (bc.d_i, bc.d_r, bc.grid, bc.num_segments) != (mc.d_i, mc.d_r, mc.grid, mc.n_frames):
            raise ValueError(f"backbones make features {bc.num_segments}x{bc.grid}x({bc.d_i}, {bc.d_r}), "
                             f"the model expects {mc.n_frames}x{mc.grid}x({mc.d_i}, {mc.d_r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        _write(tmp / "model.safetensors", save(state))
        if backbones is not None:
            backbones.save(tmp / "backbones.safetensors")
        _write(tmp / "vocab.json", json.dumps(vocab.to_dict()).encode())
        config = {"format": FORMAT, "model": json.loads(model.config.to_json()),
                  "backbones": backbones.config.to_dict() if backbones is not None else None, "info": info or {}}
        _write(tmp / "config.json", json.dumps(config, indent=2, sort_keys=True, default=str).encode())
        fsync_dir(tmp)  # the files' names in it
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in _FILES)


def checkpoint_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 over the checkpoint directory's files (names and contents, in name order): two
    checkpoints with one hash caption identically."""
    digest = hashlib.sha256()
    for name in sorted((*_FILES, "backbones.safetensors")):
        file = Path(path) / name
        if file.is_file():
            digest.update(name.encode() + b"\0")
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def resolve_checkpoint(path: str | os.PathLike[str] | None) -> Path:
    """The checkpoint directory meant by `path`: None -> the bundled demo; a training run folder
    (with best/) -> its best checkpoint; else `path` itself. Raises FileNotFoundError, naming it."""
    if path is None:
        if not _complete(DEMO_CHECKPOINT):
            raise FileNotFoundError(f"the bundled demo checkpoint is missing from {DEMO_CHECKPOINT}; "
                                    "give a checkpoint with --checkpoint RUN")
        return DEMO_CHECKPOINT
    path = Path(path)
    if (path / "best").is_dir() or not path.exists():
        candidate = path / "best" if path.is_dir() else path
        if not candidate.exists():
            # A save killed between its two renames leaves the previous checkpoint here.
            leftovers = sorted(candidate.parent.glob(f".{candidate.name}.old-*"))
            leftovers = [p for p in leftovers if _complete(p)]
            if leftovers:
                warnings.warn(f"{candidate} is missing; using the previous checkpoint {leftovers[-1]}", stacklevel=2)
                return leftovers[-1]
        path = candidate
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a checkpoint: {', '.join(missing)} missing")
    return path


def load_checkpoint(path: str | os.PathLike[str] | None, device: str | torch.device = "cpu",
                    backend: str | None = None) -> Checkpoint:
    """Loads what `resolve_checkpoint(path)` finds; the model (and backbones) in eval mode on `device`,
    the model's encoder running on `backend` (see `vccv_gpu.kernels.backend`)."""
    from safetensors.torch import load_file

    path = resolve_checkpoint(path)
    try:
        config = json.loads((path / "config.json").read_text())
        if config.get("format") != FORMAT:
            raise ValueError(f"unsupported checkpoint format {config.get('format')!r} (this version reads {FORMAT})")
        model = VCCV(VCCVConfig.from_json(json.dumps(config["model"])), backend=backend)
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        vocab = Vocabulary.from_dict(json.loads((path / "vocab.json").read_text()))
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise ValueError(f"{path}: damaged or incompatible checkpoint ({e})") from e
    if len(vocab) != model.config.vocab_size:
        raise ValueError(f"{path}: vocabulary has {len(vocab)} words, the model {model.config.vocab_size}")
    backbones = None
    if (path / "backbones.safetensors").is_file():
        backbones = FeatureExtractor.load(path / "backbones.safetensors", device)
        if config.get("backbones") and BackboneConfig.from_dict(config["backbones"]) != backbones.config:
            raise ValueError(f"{path}: backbones.safetensors does not match config.json")
    return Checkpoint(model=model.to(device).eval(), vocab=vocab, backbones=backbones,
                      info=config.get("info", {}), path=path)
