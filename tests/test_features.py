"""The feature store on its own: writing shards, the index, resume state, refusals, reading."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch

from vccv_gpu.backbones import BackboneConfig, FeatureExtractor
from vccv_gpu.features import (
    ERRORS_FILE,
    INDEX_FILE,
    FeatureStore,
    FeatureStoreError,
    StoreWriter,
    VideoError,
    merge_index,
    prepare_store,
    video_key,
    weights_fingerprint,
)

CONFIG = BackboneConfig(iframe="tiny", residual="tiny", size=64, num_segments=4)


def tiny_extractor(seed: int = 0, config: BackboneConfig = CONFIG) -> FeatureExtractor:
    torch.manual_seed(seed)
    return FeatureExtractor(config)


def features(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n, (h, w) = CONFIG.num_segments, CONFIG.grid
    return torch.randn(n, h, w, CONFIG.d_i, generator=g), torch.randn(n, h, w, CONFIG.d_r, generator=g)


def fill(root: Path, keys: list[str], rank: int = 0, shard_size: int = 2) -> None:
    with StoreWriter(root, rank=rank, shard_size=shard_size) as writer:
        for i, key in enumerate(keys):
            writer.add(key, *features(zlib.crc32(key.encode())), info={"frames": [i]})


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    prepare_store(root, tiny_extractor())
    return root


def test_round_trip_across_shards(store_root: Path) -> None:
    keys = [f"/videos/v{i}.mp4" for i in range(5)]
    fill(store_root, keys, shard_size=2)
    assert sorted(p.name for p in store_root.glob("rank*.safetensors")) == [
        "rank0-00000.safetensors", "rank0-00001.safetensors", "rank0-00002.safetensors"]
    merge_index(store_root)
    store = FeatureStore(store_root, open_shards=1)
    assert store.config == CONFIG
    assert len(store) == 5 and store.keys() == sorted(keys)
    assert "/videos/v3.mp4" in store and "/videos/nope.mp4" not in store
    for i, key in enumerate(keys):
        v_i, a_r = store.load(key)
        want_i, want_r = features(zlib.crc32(key.encode()))
        assert v_i.dtype == a_r.dtype == torch.float16
        assert v_i.shape == (4, 4, 4, 128) and a_r.shape == (4, 4, 4, 128)
        assert torch.equal(v_i, want_i.half()) and torch.equal(a_r, want_r.half())
        assert store.info(key) == {"frames": [i]}
    assert len(store._handles) == 1  # open_shards bounds the open files
    assert store.backbones_path == store_root / "backbones.safetensors"
    reloaded = FeatureExtractor.load(store.backbones_path)
    assert weights_fingerprint(reloaded.state_dict()) == store.weights_sha256
    with pytest.raises(KeyError, match="nope"):
        store.load("/videos/nope.mp4")


def test_paths_are_looked_up_by_video_key(store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = tmp_path / "clips" / "a.mp4"
    fill(store_root, [video_key(video)])
    monkeypatch.chdir(tmp_path)
    store = FeatureStore(store_root)
    assert Path("clips/a.mp4") in store and "clips/a.mp4" in store
    assert torch.equal(store.load("clips/a.mp4")[0], store.load(video_key(video))[0])


def test_reads_jsonl_when_index_is_missing_or_outdated(store_root: Path) -> None:
    fill(store_root, ["/a", "/b"])
    assert not (store_root / INDEX_FILE).exists()
    assert FeatureStore(store_root).keys() == ["/a", "/b"]  # no index.json: the jsonl files
    merge_index(store_root)
    fill(store_root, ["/c"], rank=1)  # a later run: index.json no longer covers everything
    assert FeatureStore(store_root).keys() == ["/a", "/b", "/c"]
    merge_index(store_root)
    assert set(json.loads((store_root / INDEX_FILE).read_text())["videos"]) == {"/a", "/b", "/c"}


def test_torn_lines_and_missing_shards_are_ignored(store_root: Path) -> None:
    fill(store_root, ["/a", "/b", "/c"], shard_size=2)
    jsonl = store_root / "index-rank0.jsonl"
    with open(jsonl, "a") as f:
        f.write('{"key": "/d", "shard": "rank0-00009.safetensors"}\n')  # shard never written
        f.write('{"key": "/e", "sha')  # killed mid-append
    assert FeatureStore(store_root).keys() == ["/a", "/b", "/c"]
    (store_root / "rank0-00001.safetensors").unlink()
    assert FeatureStore(store_root).keys() == ["/a", "/b"]


def test_resumed_writer_knows_what_is_done_and_cleans_up(store_root: Path) -> None:
    fill(store_root, ["/a", "/b"], shard_size=2)
    (store_root / ".rank0-00001.123.tmp").write_bytes(b"half a shard")      # killed mid-write
    (store_root / "rank0-00001.safetensors").write_bytes(b"renamed, not indexed")  # killed before indexing
    jsonl = store_root / "index-rank0.jsonl"
    jsonl.write_text(jsonl.read_text() + '{"key": "/x", "sh')
    with StoreWriter(store_root, rank=0, shard_size=2) as writer:
        assert writer.done == {"/a", "/b"}
        assert not (store_root / ".rank0-00001.123.tmp").exists()
        writer.add("/c", *features(3))
    assert jsonl.read_text().endswith("\n") and "/x" not in jsonl.read_text()
    store = FeatureStore(store_root)
    assert store.keys() == ["/a", "/b", "/c"]
    assert torch.equal(store.load("/c")[0], features(3)[0].half())


def test_one_writer_per_rank(store_root: Path) -> None:
    with StoreWriter(store_root, rank=0):
        with pytest.raises(FeatureStoreError, match="already writing rank 0"):
            StoreWriter(store_root, rank=0)
        StoreWriter(store_root, rank=1).close()  # other ranks are fine


def test_refuses_other_backbones(store_root: Path) -> None:
    prepare_store(store_root, tiny_extractor())  # same config and weights: accepted
    other = BackboneConfig(iframe="tiny", residual="tiny", size=64, num_segments=5)
    with pytest.raises(FeatureStoreError, match="num_segments': 5"):
        prepare_store(store_root, tiny_extractor(config=other))
    with pytest.raises(FeatureStoreError, match="other tiny/tiny weights"):
        prepare_store(store_root, tiny_extractor(seed=1))


def test_rejects_features_of_the_wrong_shape(store_root: Path) -> None:
    v_i, a_r = features(0)
    with StoreWriter(store_root) as writer, pytest.raises(ValueError, match="needs"):
        writer.add("/a", v_i[:3], a_r)


def test_errors_are_merged(store_root: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    with StoreWriter(store_root, rank=0) as writer:
        writer.error(VideoError(str(good), "was missing", "FileNotFoundError"))
        writer.error(VideoError(str(bad), "first try", "CorruptStream"))
    with StoreWriter(store_root, rank=1) as writer:
        writer.error(VideoError(str(bad), "second try", "CorruptStream"))
        writer.add(video_key(good), *features(0))  # extracted later: no longer an error
    merge_index(store_root)
    lines = [json.loads(line) for line in (store_root / ERRORS_FILE).read_text().splitlines()]
    assert lines == [{"path": str(bad), "reason": "second try", "kind": "CorruptStream"}]
    assert FeatureStore(store_root).errors() == [VideoError(str(bad), "second try", "CorruptStream")]


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(FeatureStoreError, match="not found"):
        FeatureStore(tmp_path / "nothing")
    with pytest.raises(FeatureStoreError, match="not a feature store"):
        FeatureStore(tmp_path)
