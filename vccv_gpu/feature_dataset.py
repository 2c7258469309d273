"""Datasets over a feature store (features.py), shared by training and evaluation: the videos of
annotated samples found in a store (`find_in_store`) and their stored features (`StoredFeatures`)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from vccv_gpu.data import Sample
from vccv_gpu.features import FeatureStore, video_key

__all__ = ["StoredFeatures", "StoredVideo", "find_in_store", "warn_missing"]


@dataclass(frozen=True)
class StoredVideo:
    """A video of the dataset whose features are in the store under `key`."""

    video_id: str
    key: str
    path: str
    captions: tuple[str, ...]


def find_in_store(samples: Sequence[Sample], keys: Sequence[str]) -> tuple[list[StoredVideo], list[Sample]]:
    """(videos found in the store, samples not found). A sample is found by `video_key` of its video
    path; failing that (a store extracted on another machine or from another folder) by its file
    name stem or video id, when exactly one stored video has that stem."""
    stored = set(keys)
    by_stem: dict[str, str | None] = {}
    for key in keys:
        stem = Path(key).stem
        by_stem[stem] = None if stem in by_stem else key  # None: ambiguous
    found: list[StoredVideo] = []
    missing: list[Sample] = []
    for sample in samples:
        key = video_key(sample.video_path) if sample.video_path is not None else None
        if key not in stored:
            stem = Path(sample.video_path).stem if sample.video_path is not None else sample.video_id
            key = by_stem.get(stem) or by_stem.get(sample.video_id)
        if key is None:
            missing.append(sample)
        else:
            found.append(StoredVideo(sample.video_id, key, str(sample.video_path or sample.video_id),
                                     tuple(sample.captions)))
    return found, missing


def warn_missing(missing: Sequence[Sample], total: int, store: str | os.PathLike[str], what: str) -> None:
    if missing:
        examples = ", ".join(s.video_id for s in missing[:3])
        warnings.warn(f"{len(missing)} of {total} {what} videos have no features in {store} (e.g. {examples}); "
                      "skipping them", RuntimeWarning, stacklevel=3)


class StoredFeatures(Dataset):
    """(v_i, a_r) float32 of stored videos by index. The store is opened lazily in each process
    (DataLoader workers cannot share its open files)."""

    def __init__(self, root: str | os.PathLike[str], keys: Sequence[str]) -> None:
        self.root = Path(root)
        self.keys = list(keys)
        self._store: Any = None

    def __len__(self) -> int:
        return len(self.keys)

    def store(self) -> Any:
        if self._store is None:
            self._store = FeatureStore(self.root)
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}

    def features(self, key: str) -> tuple[Tensor, Tensor]:
        v_i, a_r = self.store().load(key)
        return v_i.float(), a_r.float()

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.features(self.keys[index])
