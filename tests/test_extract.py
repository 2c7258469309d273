"""Feature extraction into a store: values, resume, kills, bad videos, refusals, the CLI (--engine ray:
test_ray_engine.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vccv_gpu import features
from vccv_gpu.backbones import BackboneConfig, FeatureExtractor
from vccv_gpu.codec.info import find_videos
from vccv_gpu.codec.sample import sample_clip
from vccv_gpu.extract import extract, main
from vccv_gpu.features import FeatureStore, FeatureStoreError, video_key

CONFIG = BackboneConfig(iframe="tiny", residual="tiny", size=64, num_segments=4)
TINY_ARGS = ["--iframe-backbone", "tiny", "--residual-backbone", "tiny", "--size", "64", "--segments", "4",
             "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """captions.csv of 6 generated clips (videos/clip_0000k.mp4), encoded once per session."""
    from vccv_gpu.data import synthetic

    return synthetic.generate(tmp_path_factory.mktemp("extract_data"), videos=6, size=(64, 48), frames=24)


@pytest.fixture(scope="session")
def clips(dataset: Path) -> list[Path]:
    return sorted((dataset.parent / "videos").glob("*.mp4"))


def tiny_extractor(seed: int = 0, config: BackboneConfig = CONFIG) -> FeatureExtractor:
    torch.manual_seed(seed)
    return FeatureExtractor(config)


def count_clips(extractor: FeatureExtractor) -> list[int]:
    """A list that grows by the batch size at every forward pass."""
    calls: list[int] = []
    extractor.register_forward_pre_hook(lambda _module, inputs: calls.append(inputs[0].shape[0]))
    return calls


def test_store_holds_what_the_extractor_computes(clips: list[Path], tmp_path: Path) -> None:
    extractor = tiny_extractor()
    report = extract(clips[:4], tmp_path / "store", extractor, batch_size=3, workers=2, shard_size=3)
    assert (report.extracted, report.skipped, report.failed) == (4, 0, [])
    assert report.clips_per_second > 0
    store = FeatureStore(tmp_path / "store")
    assert store.config == CONFIG and store.keys() == sorted(video_key(p) for p in clips[:4])
    for path in clips[:4]:
        v_i, a_r = store.load(path)
        assert v_i.dtype == a_r.dtype == torch.float16
        assert v_i.shape == (4, 4, 4, 128) and a_r.shape == (4, 4, 4, 128)
        sample = sample_clip(path, num_segments=4, size=64)
        with torch.inference_mode():
            want_i, want_r = extractor(sample.iframes[None], sample.residuals[None].float())
        torch.testing.assert_close(v_i, want_i[0].half(), rtol=2e-3, atol=2e-3)
        torch.testing.assert_close(a_r, want_r[0].half(), rtol=2e-3, atol=2e-3)
        assert store.info(path)["frames"] == sample.frame_indices
    assert a_r.abs().sum() > 0  # the residual branch saw real residuals
    loaded = FeatureExtractor.load(store.backbones_path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), extractor.state_dict().values()))


def test_keep_aspect_sampling(clips: list[Path], tmp_path: Path) -> None:
    config = BackboneConfig(iframe="tiny", residual="tiny", size=32, num_segments=4, keep_aspect=True)
    extractor = tiny_extractor(config=config)
    extract(clips[:1], tmp_path / "store", extractor, batch_size=1, workers=1)
    sample = sample_clip(clips[0], num_segments=4, size=32, keep_aspect=True)
    with torch.inference_mode():
        want_i, _ = extractor(sample.iframes[None], sample.residuals[None].float())
    torch.testing.assert_close(FeatureStore(tmp_path / "store").load(clips[0])[0], want_i[0].half(),
                               rtol=2e-3, atol=2e-3)


def test_resume_skips_finished_videos(clips: list[Path], tmp_path: Path) -> None:
    extractor = tiny_extractor()
    calls = count_clips(extractor)
    extract(clips[:3], tmp_path / "store", extractor, batch_size=2, workers=1)
    assert sum(calls) == 3
    calls.clear()
    report = extract(clips, tmp_path / "store", extractor, batch_size=2, workers=1)
    assert sum(calls) == 3 and (report.extracted, report.skipped) == (3, 3)
    calls.clear()
    report = extract(clips, tmp_path / "store", extractor, batch_size=2, workers=1)
    assert calls == [] and (report.extracted, report.skipped) == (0, 6)
    assert len(FeatureStore(tmp_path / "store")) == 6


class SimulatedKill(BaseException):
    """Stands for SIGKILL: nothing after the raise runs, no `except Exception` catches it."""


def test_a_kill_mid_shard_leaves_a_readable_store_and_resume_completes(
        clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    published: list[Path] = []
    real_publish = features._publish

    def publish_then_die(tmp: Path, path: Path) -> None:
        if published:  # the second shard: written to its temp file, killed before the rename
            raise SimulatedKill
        real_publish(tmp, path)
        published.append(path)

    monkeypatch.setattr(features, "_publish", publish_then_die)
    with pytest.raises(SimulatedKill):
        extract(clips, root, tiny_extractor(), batch_size=2, workers=1, shard_size=2)
    monkeypatch.setattr(features, "_publish", real_publish)
    assert list(root.glob(".rank0-*.tmp"))  # the half-written shard
    with open(root / "index-rank0.jsonl", "a") as f:
        f.write('{"key": "' + video_key(clips[5]) + '", "shard": "rank0-0')  # and a torn line

    store = FeatureStore(root)
    assert store.keys() == [video_key(p) for p in clips[:2]]
    store.load(clips[0])

    extractor = tiny_extractor()
    calls = count_clips(extractor)
    report = extract(clips, root, extractor, batch_size=2, workers=1, shard_size=2)
    assert sum(calls) == 4 and (report.extracted, report.skipped) == (4, 2)
    assert not list(root.glob(".rank0-*.tmp"))
    store = FeatureStore(root)
    assert store.keys() == sorted(video_key(p) for p in clips)
    assert all(store.load(p)[0].shape == (4, 4, 4, 128) for p in clips)


def test_bad_videos_are_reported_and_the_rest_extracted(
        clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "store"
    code = main([str(clips[0]), str(garbage), str(missing), str(clips[1]), "--out", str(out), *TINY_ARGS])
    assert code == 1
    err = capsys.readouterr().err
    assert str(garbage) in err and str(missing) in err and "2 failed" in err
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["path"] for e in errors) == sorted([str(garbage), str(missing)])
    assert all(e["reason"] and e["kind"] for e in errors)
    store = FeatureStore(out)
    assert store.keys() == sorted(video_key(p) for p in clips[:2])
    # A rerun retries only the failures (still failing), and adding a good video succeeds.
    assert main([str(garbage), "--out", str(out), "--no-progress"]) == 1
    assert main([str(clips[2]), "--out", str(out), "--no-progress"]) == 0
    assert len(FeatureStore(out)) == 3


def test_cli_takes_folders_and_datasets(dataset: Path, clips: list[Path], tmp_path: Path) -> None:
    nested = tmp_path / "in" / "deeper"
    nested.mkdir(parents=True)
    (nested / "clip.MKV").write_bytes(b"")
    (nested / "notes.txt").write_text("not a video")
    assert find_videos([tmp_path / "in", clips[0]]) == [nested / "clip.MKV", clips[0]]

    out = tmp_path / "store"
    assert main(["--data", str(dataset), "--split", "train", "--out", str(out), *TINY_ARGS]) == 0
    train = [line.split(",")[0] for line in dataset.read_text().splitlines()[1:] if line.endswith(",train")]
    assert train and FeatureStore(out).keys() == sorted(video_key(dataset.parent / v) for v in train)


def test_cli_refuses_other_backbones(clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "store"
    assert main([str(clips[0]), "--out", str(out), *TINY_ARGS]) == 0
    other = [a if a != "4" else "5" for a in TINY_ARGS]  # --segments 5
    assert main([str(clips[1]), "--out", str(out), *other]) == 2
    err = capsys.readouterr().err
    assert "this store holds features of backbones" in err and "Traceback" not in err
    with pytest.raises(FeatureStoreError, match="other tiny/tiny weights"):
        extract(clips[1:2], out, tiny_extractor(seed=7))
    assert len(FeatureStore(out)) == 1


def test_help(cli_help: Callable[..., str]) -> None:
    text = cli_help(main, "python -m vccv_gpu.extract")
    for option in ("--out", "--data", "--backbones", "--shard-size", "--device"):
        assert option in text
