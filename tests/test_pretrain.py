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


def test_scene_words_join_cnn_i_targets_only(captions, tmp_path, monkeypatch) -> None:
    """iframe_scene adds CNN_I targets per video (every clip made to show every colour: all
    positive); CNN_r's targets stay the captions' words."""
    from vccv_gpu import pretrain as module
    from vccv_gpu.data import load_dataset
    from vccv_gpu.data.synthetic import COLOURS

    train = load_dataset("csv", captions, split="train")
    colours = [c for c in COLOURS if any(c in s.captions[0].split() for s in train)]
    assert len(colours) > 1
    scene = {s.video_path: set(colours) for s in load_dataset("csv", captions)}  # Path keys work too
    seen: list = []
    bce = module.F.binary_cross_entropy_with_logits
    monkeypatch.setattr(module.F, "binary_cross_entropy_with_logits",
                        lambda scores, targets: seen.append(targets) or bce(scores, targets))
    opts = dict(iframe_words=colours, residual_words=colours, epochs=1)
    pretrain(_options(captions, tmp_path / "a.safetensors", **opts))
    plain_iframe, plain_residual = seen[0::2], seen[1::2]
    seen.clear()
    pretrain(_options(captions, tmp_path / "b.safetensors", iframe_scene=scene, **opts))
    shown_iframe, shown_residual = seen[0::2], seen[1::2]
    assert all(bool((t == 1).all()) for t in shown_iframe)
    assert not all(bool((t == 1).all()) for t in plain_iframe)
    assert all(torch.equal(a, b) for a, b in zip(plain_residual, shown_residual))
    assert all(torch.equal(a, b) for a, b in zip(plain_iframe, plain_residual))  # the same labels: caption words


def test_iframe_scene_on_the_command_line(tmp_path, monkeypatch, capsys) -> None:
    """--iframe-scene POSITIONS_JSON hands pretrain() every object's colour and shape per video,
    keyed as iframe_scene is; a file that lacks a video is refused."""
    import json

    from vccv_gpu import pretrain as module
    from vccv_gpu.data import load_dataset
    from vccv_gpu.data.synthetic import scene_words

    data = generate(tmp_path / "set", videos=4, seed=5, size=(64, 48), frames=12, distractors=2)
    got: list = []
    monkeypatch.setattr(module, "pretrain", lambda opts: got.append(opts) or module.PretrainResult(opts.out, []))
    out = str(tmp_path / "b.safetensors")
    assert main(["--data", str(data), "--out", out, "--iframe-scene", str(data.parent / "positions.json")]) == 0
    assert got[0].iframe_scene == scene_words(data)
    assert all(len(words) >= 3 for words in got[0].iframe_scene.values())  # 3 objects, colours all different
    assert main(["--data", str(data), "--out", out]) == 0 and got[1].iframe_scene is None
    where = json.loads((data.parent / "positions.json").read_text())
    first = load_dataset("csv", data)[0].video_id
    del where[first]
    (tmp_path / "short.json").write_text(json.dumps(where))
    assert main(["--data", str(data), "--out", out, "--iframe-scene", str(tmp_path / "short.json")]) == 2
    assert first in capsys.readouterr().err and len(got) == 2


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
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--residual-words" in out and "--iframe-scene" in out
