"""Backbone pretraining on caption words: it learns, writes a loadable extractor, checks its labels."""

from __future__ import annotations

import math

import pytest
import torch

from vccv_gpu.backbones import FeatureExtractor
from vccv_gpu.data.synthetic import generate
from vccv_gpu.pretrain import (
    PretrainOptions,
    _average_precision,
    _cell_contents,
    _cells_loss,
    _cells_right,
    _object_cells,
    _pointing,
    _where_loss,
    main,
    pretrain,
)


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


@pytest.fixture(scope="module")
def distractor_set(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("where"), videos=6, seed=5, size=(64, 48), frames=24, distractors=2)


def test_object_cells_are_the_named_objects_cell_in_each_residual_frame() -> None:
    from vccv_gpu.backbones import BackboneConfig

    config = BackboneConfig("tiny", "tiny", size=112)  # a 7 x 7 grid
    track = {"size": [160, 96], "centre": [[10.0, 10.0], [150.0, 90.0], [80.0, 48.0], [80.0, 48.0]],
             "visible": [True, True, False, True]}
    # Sources (0, 1, 2): the middle one, frame 1, at the bottom right; frame 2 hidden; none: no residual.
    assert _object_cells(track, [(0,), (0, 1, 2), (2,), (), (3,)], config) == [0, 48, -1, -1, 3 * 7 + 3]
    assert _object_cells(None, [(0,), (1,)], config) == [-1, -1]  # a video the track file lacks


def test_where_loss_and_pointing_on_hand_made_maps() -> None:
    features = torch.zeros(3, 4, 3, 3)
    features[0, :, :2, :2] = 5.0  # frame 0's channel mean is high on cell 0 and its neighbours 1, 3, 4;
    features[1, :, 1:, 1:] = 5.0  # frame 1's on cell 8 (bottom right) and its neighbours 4, 5, 7
    right, wrong = torch.tensor([[0, 8, -1]]), torch.tensor([[8, 0, -1]])
    blob_loss = _where_loss(features, right)
    assert blob_loss < 2.0 < _where_loss(features, wrong)
    assert blob_loss == pytest.approx(math.log(4), abs=0.05)  # a corner's neighbourhood: 4 cells alike
    peaks = torch.zeros(3, 4, 3, 3)
    peaks[0, :, 0, 0] = 5.0
    peaks[1, :, 2, 2] = 5.0
    assert _where_loss(peaks, right) > blob_loss + 0.5  # one cell alone is not the target
    assert _where_loss(features, torch.tensor([[-1, -1, -1]])) == 0.0  # no frame sees the object
    assert _pointing(peaks, right, (3, 3)) == (2, 2)
    assert _pointing(peaks, torch.tensor([[8, 4, -1]]), (3, 3)) == (1, 2)  # cell 4 is next to cell 8


def test_where_target_trains_cnn_r_to_point(distractor_set, tmp_path) -> None:
    """With residual_where, CNN_r's loss has a "where" term that falls, and validation reports
    A^s_r's pointing; without it, neither."""
    from vccv_gpu.data import load_dataset
    from vccv_gpu.data.synthetic import named_tracks

    tracks = named_tracks(distractor_set.parent / "positions.json", load_dataset("csv", distractor_set))
    torch.manual_seed(0)
    result = pretrain(_options(distractor_set, tmp_path / "w.safetensors", residual_where=tracks, epochs=4))
    losses = [h["loss_where"] for h in result.history]
    assert losses[-1] < losses[0], losses
    assert all(0.0 <= h["val_pointing_residual"] <= 100.0 for h in result.history)
    plain = pretrain(_options(distractor_set, tmp_path / "p.safetensors", epochs=1))
    assert "loss_where" not in plain.history[0] and "val_pointing_residual" not in plain.history[0]


def test_residual_where_on_the_command_line(distractor_set, tmp_path, monkeypatch) -> None:
    from vccv_gpu import pretrain as module
    from vccv_gpu.data import load_dataset
    from vccv_gpu.data.synthetic import named_tracks

    got: list = []
    monkeypatch.setattr(module, "pretrain", lambda opts: got.append(opts) or module.PretrainResult(opts.out, []))
    positions = distractor_set.parent / "positions.json"
    assert main(["--data", str(distractor_set), "--out", str(tmp_path / "b.safetensors"),
                 "--residual-where", str(positions)]) == 0
    assert got[0].residual_where == named_tracks(positions, load_dataset("csv", distractor_set))
    assert got[0].iframe_scene is None


def test_cell_contents_name_each_objects_cell_in_each_frame() -> None:
    from vccv_gpu.backbones import BackboneConfig

    config = BackboneConfig("tiny", "tiny", size=112)  # a 7 x 7 grid over a 160 x 96 video
    scene = {"size": [160, 96], "objects": [
        {"colour": "red", "shape": "ball", "centre": [[10.0, 10.0], [150.0, 90.0]], "visible": [True, False]},
        {"colour": "blue", "shape": "triangle", "centre": [[80.0, 48.0], [80.0, 48.0]], "visible": [True, True]}]}
    classes = (["blue", "red"], ["ball", "square", "triangle"])
    contents = _cell_contents(scene, [0, 1], config, classes)
    assert contents.shape == (2, 49, 2)
    assert contents[0, 0].tolist() == [2, 1] and contents[0, 3 * 7 + 3].tolist() == [1, 3]
    assert contents[1, 3 * 7 + 3].tolist() == [1, 3] and int((contents[1] > 0).sum()) == 2  # the ball is hidden
    assert int((contents[0] > 0).sum()) == 4  # two cells, two classes each; the rest "none"
    assert not _cell_contents(None, [0, 1], config, classes).any()  # a video without a scene


def test_cells_loss_and_count_on_hand_made_scores() -> None:
    head = torch.nn.Linear(3, 3 + 2, bias=False)  # 2 colours + none, 1 shape + none
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.0, 0, 0], [5, 0, 0], [0, 5, 0], [0, 0, 0], [0, 0, 5]]))
    features = torch.zeros(1, 3, 1, 2)  # one frame, two cells: the first shows colour 1, the second colour 2
    features[0, 0, 0, 0] = features[0, 2, 0, 0] = 1.0
    features[0, 1, 0, 1] = features[0, 2, 0, 1] = 1.0
    right = torch.tensor([[[[1, 1], [2, 1]]]])
    wrong = torch.tensor([[[[2, 1], [0, 0]]]])
    assert _cells_loss(head, features, right, colours=2) < 0.1 < _cells_loss(head, features, wrong, colours=2)
    assert _cells_right(head, features, right, colours=2) == (2, 2)
    assert _cells_right(head, features, wrong, colours=2) == (0, 1)  # the empty cell does not count


def test_iframe_cells_train_cnn_i_per_cell(distractor_set, tmp_path) -> None:
    """With iframe_cells, CNN_I's loss has a per-cell term that falls, and validation reports how
    many object cells it tells right; the command line reads the same from positions.json."""
    from vccv_gpu.data import load_dataset
    from vccv_gpu.data.synthetic import scene_tracks

    positions = distractor_set.parent / "positions.json"
    scenes = scene_tracks(positions, load_dataset("csv", distractor_set))
    torch.manual_seed(0)
    result = pretrain(_options(distractor_set, tmp_path / "c.safetensors", iframe_cells=scenes, epochs=4))
    losses = [h["loss_cells"] for h in result.history]
    assert losses[-1] < losses[0], losses
    assert all(0.0 <= h["val_cells_iframe"] <= 100.0 for h in result.history)
    FeatureExtractor.load(result.path)  # the cell head is not part of the backbones
    assert main(["--data", str(distractor_set), "--out", str(tmp_path / "d.safetensors"), "--iframe-cells",
                 str(positions), "--epochs", "1", "--size", "32", "--segments", "2", "--workers", "1"]) == 0


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
    assert e.value.code == 0 and "--residual-words" in out and "--iframe-scene" in out and "--residual-where" in out
