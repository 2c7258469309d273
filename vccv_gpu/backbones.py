"""The two CNNs that turn sampled frames into the model's features (paper section IV-A).

    from vccv_gpu.backbones import BackboneConfig, FeatureExtractor
    extractor = FeatureExtractor(BackboneConfig(), iframe_weights="imagenet")
    v_i, a_r = extractor(batch.iframes, batch.residuals)   # [B,N,7,7,2048], [B,N,7,7,512]

CNN_I reads the appearance frames (the paper: ResNet-152 pretrained on ImageNet, features of the
last convolutional stage, 2048x7x7); CNN_r reads the residual frames (the paper: a ResNet-18 trained
for action recognition on HMDB-51 residuals, 512x7x7). Both are truncated after their last stage,
so a `size` x `size` input gives a ceil(size / stride) grid.

Weights, per network: "none" (random initialisation), "imagenet" (torchvision's ImageNet weights,
read from the local torch hub cache; nothing is downloaded while captioning, and a missing file is
a `MissingWeights` error that says where to put it), or the path of a file (a torchvision-style
state dict in .pth/.pt or .safetensors; classifier weights are ignored). A whole extractor, both
networks and the sampling settings, is saved as one safetensors file (`save` / `load`): that is
what pretraining writes, the feature store keeps and checkpoints bundle.

"tiny" is a ResNet-18 layout at a sixteenth of the width with stride 16 (a 112-pixel frame gives
the paper's 7x7 grid), about 0.7 M parameters: for tests, the demo checkpoint and CPU runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vccv_gpu.codec.plan import RESIDUAL_MODES
from vccv_gpu.model import VCCVConfig
from vccv_gpu.runtime import atomic_write, stderr_is_terminal

__all__ = ["ARCHITECTURES", "BackboneConfig", "FeatureExtractor", "MissingWeights", "build_cnn",
           "model_config"]

# name -> (feature channels, total stride)
ARCHITECTURES: dict[str, tuple[int, int]] = {
    "resnet152": (2048, 32),
    "resnet50": (2048, 32),
    "resnet18": (512, 32),
    "tiny": (128, 16),
}

# ImageNet statistics of torchvision's weights, applied to the appearance frames.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Residuals come in pixel units (mostly within +-64); this brings them to the scale of normalised images.
RESIDUAL_SCALE = 1.0 / 64.0
_METADATA_KEY = "vccv_backbones"


class MissingWeights(FileNotFoundError):
    """Pretrained weights that are not on this machine; the message says which file and how to get it."""


@dataclass(frozen=True)
class BackboneConfig:
    """Which CNNs make the features, and how clips are sampled for them (see `codec.sample_clip`)."""

    iframe: str = "resnet152"
    residual: str = "resnet18"
    size: int = 224
    num_segments: int = 20
    residual_mode: str = "middle"
    keep_aspect: bool = False

    def __post_init__(self) -> None:
        for role, name in (("iframe", self.iframe), ("residual", self.residual)):
            if name not in ARCHITECTURES:
                raise ValueError(f"{role} backbone must be one of {sorted(ARCHITECTURES)}, got {name!r}")
        if self.residual_mode not in RESIDUAL_MODES:
            raise ValueError(f"residual_mode must be one of {RESIDUAL_MODES}, got {self.residual_mode!r}")
        if not isinstance(self.size, int) or self.size < 16:
            raise ValueError(f"size must be an integer >= 16, got {self.size!r}")
        if not isinstance(self.num_segments, int) or self.num_segments < 1:
            raise ValueError(f"num_segments must be a positive integer, got {self.num_segments!r}")

    @property
    def d_i(self) -> int:
        return ARCHITECTURES[self.iframe][0]

    @property
    def d_r(self) -> int:
        return ARCHITECTURES[self.residual][0]

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W) of both feature maps. Every stride-2 layer rounds up, so the grid is ceil(size / stride)."""
        strides = {ARCHITECTURES[self.iframe][1], ARCHITECTURES[self.residual][1]}
        if len(strides) != 1:
            raise ValueError(f"{self.iframe} and {self.residual} give different grids (strides {sorted(strides)})")
        side = math.ceil(self.size / strides.pop())
        return side, side

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneConfig:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown BackboneConfig fields: {sorted(unknown)}")
        return cls(**data)


def model_config(backbones: BackboneConfig, vocab_size: int, **overrides: Any) -> VCCVConfig:
    """The VCCVConfig whose feature sizes (d_i, d_r, grid, n_frames) match these backbones."""
    fields = {"d_i": backbones.d_i, "d_r": backbones.d_r, "grid": backbones.grid,
              "n_frames": backbones.num_segments}
    clash = {k for k in overrides if k in fields}
    if clash:
        raise ValueError(f"{sorted(clash)} come from the backbones and cannot be overridden")
    return VCCVConfig(vocab_size=vocab_size, **fields, **overrides)


# -----------------------------------------------------------------------------------------------
# Networks


class _BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convolutions and a shortcut), with torchvision's parameter names,
    so that the tiny network (and the bundled demo) needs no torchvision."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _tiny_resnet() -> nn.Module:
    def stage(inplanes: int, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        return nn.Sequential(_BasicBlock(inplanes, planes, stride, downsample), _BasicBlock(planes, planes))

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        stage(16, 16, 1), stage(16, 32, 2), stage(32, 64, 2), stage(64, 128, 2),
    )


def _imagenet_state_dict(name: str) -> dict[str, Tensor]:
    import torchvision.models as tvm

    weights = tvm.get_model_weights(name).DEFAULT
    filename = os.path.basename(weights.url)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    # torchvision's own way: download into the torch hub cache (checking the file's hash), once.
    print(f"downloading ImageNet weights for {name} ({weights.url}) into {cached.parent}", file=sys.stderr)
    try:
        return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=stderr_is_terminal(),
                                                  check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:  # no network, a proxy, a bad download
        raise MissingWeights(
            f"ImageNet weights for {name} are not on this machine ({cached}) and could not be downloaded "
            f"({e}). Download {weights.url} into {cached.parent} (or set TORCH_HOME), give a weights file "
            f"instead, or use random initialisation ('none', e.g. --backbone-weights none).") from None


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise MissingWeights(f"backbone weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file: say which one
        raise ValueError(f"{path}: not a readable weights file ({e})") from e
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def build_cnn(name: str, weights: str | os.PathLike[str] = "none") -> nn.Module:
    """A backbone truncated after its last stage: [B,3,S,S] -> [B,D,ceil(S/stride),ceil(S/stride)]."""
    if name not in ARCHITECTURES:
        raise ValueError(f"backbone must be one of {sorted(ARCHITECTURES)}, got {name!r}")
    if name == "tiny":
        if weights == "imagenet":
            raise ValueError("there are no ImageNet weights for the 'tiny' backbone")
        trunk = _tiny_resnet()
        if weights != "none":
            trunk.load_state_dict(_read_state_dict(Path(weights)))
        return trunk
    import torchvision.models as tvm

    net = tvm.get_model(name, weights=None)
    if weights != "none":
        state = _imagenet_state_dict(name) if weights == "imagenet" else _read_state_dict(Path(weights))
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ValueError(f"weights for {name} do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)


class FeatureExtractor(nn.Module):
    """CNN_I and CNN_r with their input normalisation: sampled clips in, channel-last features out."""

    def __init__(self, config: BackboneConfig, iframe_weights: str | os.PathLike[str] = "none",
                 residual_weights: str | os.PathLike[str] = "none") -> None:
        super().__init__()
        self.config = config
        config.grid  # noqa: B018 - raises now if the two networks disagree on the grid
        self.cnn_i = build_cnn(config.iframe, iframe_weights)
        self.cnn_r = build_cnn(config.residual, residual_weights)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def normalise_frames(self, iframes: Tensor) -> Tensor:
        """uint8 RGB [..., 3, S, S] -> ImageNet-normalised float [M, 3, S, S]."""
        x = iframes.reshape(-1, *iframes.shape[-3:]).to(self.mean.dtype)
        return (x - self.mean) / self.std

    def normalise_residuals(self, residuals: Tensor) -> Tensor:
        """RGB residual in pixel units [..., 3, S, S] -> float [M, 3, S, S] of about unit scale."""
        return residuals.reshape(-1, *residuals.shape[-3:]).to(self.mean.dtype) * RESIDUAL_SCALE

    @staticmethod
    def _run(cnn: nn.Module, x: Tensor, lead: tuple[int, ...]) -> Tensor:
        y = cnn(x.contiguous(memory_format=torch.channels_last))
        return y.permute(0, 2, 3, 1).reshape(*lead, *y.shape[2:], y.shape[1])

    def forward(self, iframes: Tensor, residuals: Tensor) -> tuple[Tensor, Tensor]:
        """iframes uint8 [B,N,3,S,S], residuals [B,N,3,S,S] -> v_i [B,N,H,W,D_I], a_r [B,N,H,W,D_r]."""
        if iframes.shape != residuals.shape or iframes.dim() != 5 or iframes.shape[2] != 3:
            raise ValueError(f"expected iframes and residuals [B, N, 3, S, S] of one shape, got "
                             f"{list(iframes.shape)} and {list(residuals.shape)}")
        lead = tuple(iframes.shape[:2])
        return (self._run(self.cnn_i, self.normalise_frames(iframes), lead),
                self._run(self.cnn_r, self.normalise_residuals(residuals), lead))

    def stored_features(self, iframes: Tensor, residuals: Tensor) -> tuple[Tensor, Tensor]:
        """What a feature store keeps: `forward` in inference mode (bf16 autocast on CUDA), as
        fp16 on the CPU, clamped to fp16's range (bf16/fp32 activations can exceed it)."""
        device = self.mean.device
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            v_i, a_r = self(iframes.to(device), residuals.to(device).float())
        limit = torch.finfo(torch.float16).max
        return (v_i.clamp(-limit, limit).to(torch.float16).cpu(), a_r.clamp(-limit, limit).to(torch.float16).cpu())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Both networks and the config in one safetensors file (written atomically)."""
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        data = save(state, metadata={_METADATA_KEY: json.dumps(self.config.to_dict())})
        return atomic_write(path, lambda f: f.write(data))

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FeatureExtractor:
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise MissingWeights(f"backbones file not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
            config = BackboneConfig.from_dict(json.loads(metadata[_METADATA_KEY]))
            state = load_file(str(path))
        except (KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a vccv_gpu backbones file (no {_METADATA_KEY} metadata)") from e
        except Exception as e:
            if isinstance(e, ValueError) and str(path) in str(e):
                raise
            raise ValueError(f"{path}: not a readable backbones file ({e})") from e
        extractor = cls(config)
        extractor.load_state_dict(state)
        return extractor.to(device).eval()
