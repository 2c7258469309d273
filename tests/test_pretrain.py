"""Backbone pretraining on caption words: it learns, writes a loadable extractor, checks its labels."""

from __future__ import annotations

import pytest
import torch

from vccv_gpu.backbones import FeatureExtractor
from vccv_gpu.data.synthetic import generate
from vccv_gpu.pretrain import PretrainOptions, _average_precision, main, pretrain


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("pretrain"), videos=8, seed=3, size=(64, 48), frames=24)


def _options(captions, out, **kw) -> PretrainOptions:
    base = dict(data=[str(captions)], out=str(out), size=32, segments=3, batch=4, epochs=6, lr=3e-3,
                workers=1, progress=False, device="cpu")
    return PretrainOptions(**{**base, **kw})


def test_pretraining_learns_and_saves(captions, tmp_path) -> None:
    torch.manual_seed(0)
    result = pretrain(_options(captions, tmp_path / "b.safetensors", iframe_words=["ball", "square", "triangle"]))
    losses = [h["loss_residual"] for h in result.history]
    assert len(result.history) == 6 and losses[-1] < 0.8 * losses[0], losses
    assert all("val_map_iframe" in h for h in result.history)
    extractor = FeatureExtractor.load(result.path)
    assert (extractor.config.size, extractor.config.num_segments) == (32, 3)
    untrained = FeatureExtractor(extractor.config)
    assert not torch.equal(extractor.cnn_i[0].weight, untrained.cnn_i[0].weight)


def test_unknown_label_words_are_refused(captions, tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="zebra"):
        pretrain(_options(captions, tmp_path / "b.safetensors", residual_words=["left", "zebra"], epochs=1))
    assert main(["--data", str(captions), "--out", str(tmp_path / "c.safetensors"), "--iframe-words", "zebra",
                 "--epochs", "1", "--size", "32", "--segments", "2"]) == 2
    assert "zebra" in capsys.readouterr().err
    assert not (tmp_path / "c.safetensors").exists()


def test_average_precision() -> None:
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    perfect = torch.tensor([[0.9, 0.1], [0.1, 0.8], [0.8, 0.2]])
    assert _average_precision(perfect, targets) == pytest.approx(100.0)
    # label 0 ranked: clip 1 (negative) first, then clips 0 and 2: AP = (1/2 + 2/3) / 2
    worse = torch.tensor([[0.5, 0.1], [0.9, 0.8], [0.4, 0.2]])
    assert _average_precision(worse, targets) == pytest.approx(100.0 * ((0.5 + 2 / 3) / 2 + 1.0) / 2)


def test_help(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--residual-words" in capsys.readouterr().out
