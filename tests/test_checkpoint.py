"""Checkpoints: round trip, atomic replacement, recovery, resolution and errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from vccv_gpu.backbones import BackboneConfig, FeatureExtractor, model_config
from vccv_gpu.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from vccv_gpu.data import Vocabulary
from vccv_gpu.model import VCCV

BACKBONES = BackboneConfig("tiny", "tiny", size=112, num_segments=3)


def _parts(seed: int = 0) -> tuple[VCCV, Vocabulary, FeatureExtractor]:
    torch.manual_seed(seed)
    vocab = Vocabulary.build(["a red ball moves to the left"] * 3)
    model = VCCV(model_config(BACKBONES, len(vocab), embed=8, hidden=16, gate_dim=8))
    return model, vocab, FeatureExtractor(BACKBONES)


def test_round_trip(tmp_path) -> None:
    model, vocab, backbones = _parts()
    save_checkpoint(tmp_path / "ck", model, vocab, backbones, info={"epoch": 3})
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.info == {"epoch": 3} and ckpt.vocab == vocab and ckpt.backbones.config == BACKBONES
    assert not ckpt.model.training
    for name, value in model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[name], value), name
    v_i, a_r = torch.randn(2, 1, 3, 7, 7, 128).unbind(0)
    assert ckpt.model.generate(v_i, a_r, beam_size=2, max_len=5) == model.generate(v_i, a_r, beam_size=2, max_len=5)


def test_replace_is_atomic_and_recoverable(tmp_path) -> None:
    run = tmp_path / "run"
    model, vocab, _ = _parts(0)
    save_checkpoint(run / "best", model, vocab, info={"epoch": 1})
    save_checkpoint(run / "best", model, vocab, info={"epoch": 2})
    assert sorted(p.name for p in run.iterdir()) == ["best"]  # nothing left behind
    assert resolve_checkpoint(run) == run / "best"
    assert load_checkpoint(run).info == {"epoch": 2} and load_checkpoint(run).backbones is None
    # a save killed between its two renames: only the old one, moved aside
    os.replace(run / "best", run / ".best.old-123")
    with pytest.warns(UserWarning, match="previous checkpoint"):
        assert load_checkpoint(run / "best").info == {"epoch": 2}


def test_errors_name_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_checkpoint(tmp_path / "nothing")
    model, vocab, _ = _parts()
    save_checkpoint(tmp_path / "ck", model, vocab)
    (tmp_path / "ck" / "vocab.json").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.json missing"):
        load_checkpoint(tmp_path / "ck")
    save_checkpoint(tmp_path / "ck", model, vocab)
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["model"]["hidden"] = 99
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="damaged or incompatible"):
        load_checkpoint(tmp_path / "ck")


def test_backbones_must_fit_the_model(tmp_path) -> None:
    model, vocab, _ = _parts()
    other = FeatureExtractor(BackboneConfig("tiny", "tiny", size=112, num_segments=4))
    with pytest.raises(ValueError, match="expects"):
        save_checkpoint(tmp_path / "ck", model, vocab, other)
    assert not (tmp_path / "ck").exists()
