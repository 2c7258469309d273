"""`--engine ray` of caption and extract on a local Ray instance (one per module): the same
output as the plain engine, resume, bad files, workers that crash mid-run."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch

from vccv_gpu import caption, extract, ray_engine
from vccv_gpu.features import FeatureStore

TINY_STORE = ["--iframe-backbone", "tiny", "--residual-backbone", "tiny", "--size", "64", "--segments", "4",
              "--no-progress"]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local instance for the module (start-up takes seconds): 4 logical CPUs on CI's 2 cores,
    so that 2 sampling workers and a CPU model worker fit."""
    ray_engine.connect(None, cpus=4)
    yield
    ray.shutdown()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def plain_captions(clips: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("plain") / "captions.jsonl"
    assert caption.main([str(clips), "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu"]) == 0
    return lines(out)


def without_time(records: list[dict]) -> list[dict]:
    """Records but `seconds` (wall time), with scores rounded (beam search on another batch size)."""
    return [{**{k: v for k, v in r.items() if k != "seconds"}, "score": round(r["score"], 4)} for r in records]


@pytest.mark.parametrize("sampling_workers", [1, 2, 0])
def test_same_captions_as_the_plain_engine(tmp_path: Path, clips: Path, checkpoint: Path, plain_captions: list[dict],
                                           sampling_workers: int) -> None:
    out = tmp_path / "captions.jsonl"
    args = [str(clips), "--checkpoint", str(checkpoint), "--out", str(out), "--engine", "ray", "--batch", "3",
            "--sampling-workers", str(sampling_workers), "--model-workers", "1"]
    assert caption.main(args) == 0
    assert without_time(lines(out)) == without_time(plain_captions)  # sorted by path, one line per video
    assert not caption.errors_path(out).exists()


def test_resume_keeps_finished_lines_and_adds_the_rest_once(tmp_path: Path, clips: Path, checkpoint: Path,
                                                             plain_captions: list[dict],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # What a killed run leaves: finished lines in completion order, the last one torn.
    out = tmp_path / "captions.jsonl"
    done = [plain_captions[2], plain_captions[0]]
    torn = json.dumps(plain_captions[1])
    out.write_text("".join(json.dumps(r) + "\n" for r in done) + torn[: len(torn) // 2])
    assert caption.main([str(clips), "--checkpoint", str(checkpoint), "--out", str(out), "--engine", "ray"]) == 0
    assert f"captioning 2 videos (2 already in {out})" in capsys.readouterr().err
    records = lines(out)
    assert [r["path"] for r in records] == [r["path"] for r in plain_captions]  # each once, sorted
    assert records[0] == plain_captions[0] and records[2] == plain_captions[2]  # kept as they were
    assert without_time(records) == without_time(plain_captions)


def test_bad_files_are_listed_and_the_rest_captioned(tmp_path: Path, videos: list[Path], checkpoint: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(videos[0], folder / "good.mp4")
    (folder / "broken.mp4").write_bytes(os.urandom(3000))
    (folder / "empty.mp4").write_bytes(b"")
    out = tmp_path / "captions.jsonl"
    assert caption.main([str(folder), "--checkpoint", str(checkpoint), "--out", str(out), "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert [r["path"] for r in lines(out)] == [str((folder / "good.mp4").resolve())]
    errors = lines(caption.errors_path(out))
    assert [e["path"] for e in errors] == [str((folder / name).resolve()) for name in ("broken.mp4", "empty.mp4")]
    assert all(e["reason"] and e["kind"] == "CorruptStream" for e in errors)
    assert "2 videos could not be captioned (listed in" in err and "Traceback" not in err


def test_crashed_workers_lose_and_duplicate_nothing(tmp_path: Path, clips: Path, checkpoint: Path,
                                                   plain_captions: list[dict],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    markers = tmp_path / "crashes"
    markers.mkdir()
    monkeypatch.setenv(ray_engine.FAULT_ENV, f"sample,model@{markers}")
    out = tmp_path / "captions.jsonl"
    args = [str(clips), "--checkpoint", str(checkpoint), "--out", str(out), "--engine", "ray", "--batch", "2",
            "--sampling-workers", "2"]
    assert caption.main(args) == 0
    assert sorted(p.name for p in markers.iterdir()) == ["model.crashed", "sample.crashed"]  # both did crash
    assert without_time(lines(out)) == without_time(plain_captions)


def test_extraction_stores_what_the_plain_engine_stores(tmp_path: Path, clips: Path) -> None:
    (clips.parent / "broken.mp4").write_bytes(os.urandom(2000))
    try:
        inputs = [str(clips), str(clips.parent / "broken.mp4")]
        plain, distributed = tmp_path / "plain", tmp_path / "ray"
        assert extract.main([*inputs, "--out", str(plain), *TINY_STORE, "--device", "cpu"]) == 1
        assert extract.main([*inputs, "--out", str(distributed), "--backbones", str(plain / "backbones.safetensors"),
                             "--no-progress", "--engine", "ray", "--batch", "3"]) == 1
    finally:
        (clips.parent / "broken.mp4").unlink()
    with FeatureStore(plain) as a, FeatureStore(distributed) as b:
        assert a.keys() == b.keys() and len(a) == 4
        for key in a.keys():
            assert a.info(key) == b.info(key)
            for x, y in zip(a.load(key), b.load(key)):
                torch.testing.assert_close(x.float(), y.float(), rtol=1e-3, atol=1e-3)
        assert [e.path for e in a.errors()] == [e.path for e in b.errors()] == [str(clips.parent / "broken.mp4")]
    # Resumed: nothing left to do.
    assert extract.main([str(clips), "--out", str(distributed), "--no-progress", "--engine", "ray"]) == 0


def test_more_workers_than_the_cluster_holds_is_a_clear_error(clips: Path, checkpoint: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(clips), "--checkpoint", str(checkpoint), "--engine", "ray", "--sampling-workers", "9"]
    assert caption.main(args) == 2
    assert "the workers need 10 CPUs" in capsys.readouterr().err
