"""A tiny random captioning checkpoint for the caption tests (CPU-fast, captions of a few words)."""

from __future__ import annotations

from pathlib import Path

import torch

from vccv_gpu.backbones import BackboneConfig, FeatureExtractor, model_config
from vccv_gpu.checkpoint import save_checkpoint
from vccv_gpu.data import Vocabulary, load_dataset
from vccv_gpu.model import EOS, VCCV


def tiny_checkpoint(path: Path, clips: Path, with_backbones: bool = True) -> Path:
    """A checkpoint at `path` whose vocabulary comes from the captions.csv beside `clips`."""
    torch.manual_seed(0)
    backbones = BackboneConfig("tiny", "tiny", size=112, num_segments=4)
    captions = [c for sample in load_dataset("csv", clips.parent / "captions.csv") for c in sample.captions]
    vocab = Vocabulary.build(captions, min_count=1)
    model = VCCV(model_config(backbones, len(vocab), embed=16, hidden=32, gate_dim=16, dropout=0.0, max_len=6))
    with torch.no_grad():  # random weights would end at once (one <eos> outscores any longer caption)
        model.classifier.weight.mul_(4.0)
        model.classifier.bias[EOS] = -20.0
        for name in ("w_t", "w_i", "w_g"):  # random, not their zero start: attention and gate follow the words
            torch.nn.Linear.reset_parameters(getattr(model.encoder, name))
    extractor = FeatureExtractor(backbones) if with_backbones else None
    return save_checkpoint(path, model, vocab, extractor, info={"test": True})
