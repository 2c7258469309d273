"""Training and evaluation end to end on CPU: a real feature store of random 'tiny' features, a tiny
model, two epochs; resume equals an uninterrupted run; evaluate writes predictions and the table."""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("pycocoevalcap")

from vccv_gpu import evaluate, feature_dataset, train  # noqa: E402
from vccv_gpu.backbones import BackboneConfig, FeatureExtractor  # noqa: E402
from vccv_gpu.checkpoint import load_checkpoint  # noqa: E402
from vccv_gpu.features import FeatureStore, StoreWriter, merge_index, prepare_store, video_key  # noqa: E402
from vccv_gpu.train import TrainOptions, run_training  # noqa: E402

COLOURS = ("red", "blue", "green")
SHAPES = ("ball", "square")
MOTIONS = ("moves left", "moves right")
BACKBONES = BackboneConfig(iframe="tiny", residual="tiny", size=32, num_segments=3)  # 2x2 grid, 128 channels
TINY = {"embed": 16, "hidden": 32, "gate_dim": 16, "max_len": 8, "workers": 0, "progress": False,
        "verbose": False, "meteor": False, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> object:
    """Tiny matrices: one thread is several times faster than two on a shared 2-core machine.
    (Also restores the warning display that the command lines change.)"""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_store(root: Path, videos: list[tuple[Path, int]]) -> None:
    """Features whose content depends on the video's caption class, so there is something to learn."""
    torch.manual_seed(0)
    extractor = FeatureExtractor(BACKBONES)
    prepare_store(root, extractor)
    n, (h, w), d = BACKBONES.num_segments, BACKBONES.grid, BACKBONES.d_i
    prototypes = torch.randn(len(COLOURS) * len(SHAPES) * len(MOTIONS), n, h, w, d)
    with StoreWriter(root, shard_size=5) as writer:
        for path, cls in videos:
            noise = 0.1 * torch.randn(2, n, h, w, d)
            writer.add(video_key(path), prototypes[cls] + noise[0], prototypes[cls].flip(0) + noise[1])
    merge_index(root)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """captions.csv (14 train videos, one of them without features, 3 val, 3 test) and its store."""
    root = tmp_path_factory.mktemp("train_data")
    rows, stored = [], []
    splits = ["train"] * 14 + ["val"] * 3 + ["test"] * 3
    for i, split in enumerate(splits):
        cls = i % 12
        colour, shape, motion = COLOURS[cls % 3], SHAPES[(cls // 3) % 2], MOTIONS[cls // 6]
        video = f"videos/clip_{i:02d}.mp4"
        rows.append((video, f"a {colour} {shape} {motion}", split))
        rows.append((video, f"the {shape} is {colour} and {motion}", split))
        if i != 5:  # clip_05 was never extracted
            stored.append((root / video, cls))
    csv_path = root / "captions.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("video", "caption", "split"), *rows])
    _write_store(root / "store", stored)
    return {"csv": csv_path, "store": root / "store"}


def _options(dataset: dict[str, Path], out: Path, **changes: object) -> TrainOptions:
    return TrainOptions(**{"data": [str(dataset["csv"])], "features": str(dataset["store"]), "out": str(out),
                           **TINY, "epochs": 2, "beam": 2, **changes})


def test_train_resume_and_evaluate(dataset: dict[str, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    full = tmp_path / "full"
    with pytest.warns(RuntimeWarning, match="1 of 14 train videos have no features"):
        result = run_training(_options(dataset, full))
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all("CIDEr" in h["val"] and "METEOR" not in h["val"] for h in result.history)
    assert result.best_epoch in (1, 2) and result.best_metrics == result.history[result.best_epoch - 1]["val"]
    checkpoint = load_checkpoint(full)  # the run folder resolves to RUN/best
    assert checkpoint.path == full / "best" and checkpoint.backbones is not None
    assert checkpoint.info["features"] == str(dataset["store"].resolve())
    assert checkpoint.info["data"] == [str(dataset["csv"].resolve())] and checkpoint.info["epoch"] == result.best_epoch
    assert checkpoint.model.config.hidden == 32 and checkpoint.model.config.grid == (2, 2)
    assert len(checkpoint.vocab) > 4 and "ball" in checkpoint.vocab
    assert json.loads((full / "history.json").read_text()) == result.history
    assert any((full / "tb").iterdir())

    # the same run, killed after epoch 1 and resumed: identical weights, losses and choice of best
    resumed = tmp_path / "resumed"
    with pytest.warns(RuntimeWarning):
        run_training(_options(dataset, resumed, epochs=1, workers=1))  # workers: the store opens per process
    with pytest.raises(ValueError, match="already holds a training run"):
        run_training(_options(dataset, resumed))
    with pytest.warns(RuntimeWarning):
        second = run_training(_options(dataset, resumed, resume=True))
    assert [h["loss"] for h in second.history] == [h["loss"] for h in result.history]
    assert second.best_epoch == result.best_epoch
    want = load_checkpoint(full / "last").model.state_dict()
    got = load_checkpoint(resumed / "last").model.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)

    # evaluate needs only the run folder
    capsys.readouterr()
    assert evaluate.main([str(full), "--split", "test", "--beam", "2", "--no-meteor", "--no-progress",
                          "--device", "cpu", "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    header, _, row = printed.splitlines()[1:4]
    assert header.split("|")[0].strip() == "Model" and "CIDEr" in header and row.startswith("RAE(full)")
    predictions = json.loads((full / "predictions-test.json").read_text())
    assert [p["video_id"] for p in predictions] == ["videos/clip_17.mp4", "videos/clip_18.mp4", "videos/clip_19.mp4"]
    assert all(set(p) == {"video_id", "video", "caption"} and isinstance(p["caption"], str) for p in predictions)
    scores = evaluate.evaluate_run(full, "val", 2, meteor=False, progress=False, verbose=False, device="cpu",
                                   workers=0, out=tmp_path / "val.json")
    assert scores == pytest.approx(result.best_metrics)  # val of the best epoch, recomputed from the checkpoint


def test_training_fits_a_few_captions(dataset: dict[str, Path], tmp_path: Path) -> None:
    """Four videos, one caption each: the loss falls far below its start (the model can overfit)."""
    small = tmp_path / "four.csv"
    with open(dataset["csv"], encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if r["split"] == "train" and r["caption"].startswith("a ")][:4]
    video_dir = dataset["csv"].parent
    with open(small, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("video", "caption", "split")]
                                + [(str(video_dir / r["video"]), r["caption"], "train") for r in keep])
    options = _options(dataset, tmp_path / "run", data=[str(small)], epochs=30, batch_size=4, lr=1e-2,
                       dropout=0.0, min_count=1)
    result = run_training(options)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.15 * losses[0], losses
    assert result.best_epoch == 30 and result.best_metrics is None  # no val split: best is the latest


def test_cli(dataset: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    assert "--captions-per-video" in capsys.readouterr().out
    code = train.main(["--data", str(tmp_path / "nothing.csv"), "--features", str(dataset["store"]),
                       "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2 and "nothing.csv" in capsys.readouterr().err
    store = FeatureStore(dataset["store"])
    assert len(store) == 19 and store.config == BACKBONES


def test_captions_per_video_draws_per_epoch(dataset: dict[str, Path]) -> None:
    videos = [feature_dataset.StoredVideo(f"v{i}", f"k{i}", f"p{i}", ("a",) * 5) for i in range(3)]
    encoded = [[[1, 4 + c, 2] for c in range(n)] for n in (5, 1, 3)]
    pairs = train.CaptionPairs(dataset["store"], videos, encoded, per_video=2, seed=7)
    first = list(pairs.pairs)
    assert len(first) == 2 + 1 + 2 and [v for v, _ in first] == [0, 0, 1, 2, 2]
    draws = set()
    for epoch in range(6):
        pairs.set_epoch(epoch)
        draws.add(tuple(pairs.pairs))
        assert len(pairs) == 5
    assert len(draws) > 1
    pairs.set_epoch(0)
    assert pairs.pairs == first  # a function of (seed, epoch) only
    every = train.CaptionPairs(dataset["store"], videos, encoded)
    assert len(every) == 9
    v_i, a_r, tokens = train.collate_pairs([(torch.zeros(3, 2, 2, 128, dtype=torch.float32),) * 2 + ([1, 5, 2],),
                                            (torch.ones(3, 2, 2, 128),) * 2 + ([1, 2],)])
    assert v_i.shape == (2, 3, 2, 2, 128) and tokens.tolist() == [[1, 5, 2], [1, 2, 0]]


def test_options_are_complete() -> None:
    """Every TrainOptions field has its CLI flag (the lead's benchmark builds options directly)."""
    parser = train.build_parser()
    dests = {a.dest for a in parser._actions}
    for f in dataclasses.fields(TrainOptions):
        assert f.name in dests or f.name in {"meteor", "progress", "verbose"}, f.name
