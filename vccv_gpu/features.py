"""The feature store: the backbones' features of many videos, extracted once, read one video at a time.

    from vccv_gpu.features import FeatureStore, video_key
    store = FeatureStore("features/msrvtt")
    store.config                              # BackboneConfig the features were made with
    v_i, a_r = store.load(video_key(path))    # fp16 [N,H,W,D_I], [N,H,W,D_r] on the CPU

Layout of a store folder (written by `StoreWriter`, i.e. `python -m vccv_gpu.extract`):

* `store.json` - written once when the store is started: format, the BackboneConfig and a
  fingerprint of the backbone weights. A store refuses features from any other extractor.
* `backbones.safetensors` - the extractor (`FeatureExtractor.save`), so a model trained on the
  store can caption raw video with the same front end.
* `rank{r}-{k:05d}.safetensors` - shards, each holding up to `shard_size` videos as tensors
  `v_i:<key>` and `a_r:<key>` (fp16, channel-last). A shard is written to a temporary name,
  fsynced and renamed into place, so it is either complete or absent.
* `index-rank{r}.jsonl` - one line per video, appended (flushed and fsynced) after its shard is
  in place: {"key", "shard", "frames", "residual_frames", "policy", "fps", "duration"}. A line is
  the commit point of a video: a kill loses at most the videos whose lines were not written.
* `errors-rank{r}.jsonl` - one line per video that could not be read: {"path", "reason", "kind"}.
* `index.json`, `errors.jsonl` - the merge of the per-rank files (`merge_index`), written when
  an extraction finishes. `index.json` records the size of every jsonl file it was made from;
  when those have changed since (an extraction was interrupted or is running), readers fall
  back to the jsonl files.

Ranks never write the same file, so any number of processes (torchrun) can fill one store.
Reading is lazy: `load` opens the video's shard with `safetensors.safe_open` (memory-mapped,
a few handles kept open) and reads only that video's two tensors.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

from vccv_gpu import jsonl
from vccv_gpu.backbones import BackboneConfig
from vccv_gpu.runtime import atomic_write, fsync_dir

__all__ = ["BACKBONES_FILE", "ERRORS_FILE", "FORMAT", "INDEX_FILE", "STORE_FILE", "FeatureStore",
           "FeatureStoreError", "StoreWriter", "VideoError", "merge_index", "prepare_store", "video_key",
           "weights_fingerprint"]

FORMAT = 1
STORE_FILE = "store.json"
INDEX_FILE = "index.json"
ERRORS_FILE = "errors.jsonl"
BACKBONES_FILE = "backbones.safetensors"
_INDEX_RANK = re.compile(r"^index-rank(\d+)\.jsonl$")
_ERRORS_RANK = re.compile(r"^errors-rank(\d+)\.jsonl$")
_SHARD = re.compile(r"^rank(\d+)-(\d+)\.safetensors$")


class FeatureStoreError(ValueError):
    """A store folder that cannot be used as asked; the message names the folder and the problem."""


@dataclass(frozen=True)
class VideoError:
    """A video the extraction could not read: `path` as given, `reason`, `kind` (exception class)."""

    path: str
    reason: str
    kind: str = ""


def video_key(path: str | os.PathLike[str]) -> str:
    """The store's name for a video file: its absolute, resolved path."""
    return str(Path(path).resolve())


def weights_fingerprint(state: Mapping[str, Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict (independent of its order
    and of the file it came from): two extractors with one fingerprint compute the same features."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# -----------------------------------------------------------------------------------------------
# Small file helpers


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def _records(path: Path) -> list[dict[str, Any]]:
    """A jsonl file's complete records; a damaged line before the last is a FeatureStoreError."""
    try:
        return jsonl.read(path)
    except jsonl.JsonlError as e:
        raise FeatureStoreError(str(e)) from e


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FeatureStoreError(f"{path}: damaged {what} ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FeatureStoreError(f"{path}: not a {what} of format {FORMAT}")
    return data


def _store_meta(root: Path) -> dict[str, Any]:
    path = root / STORE_FILE
    if not path.is_file():
        raise FeatureStoreError(f"{root}: not a feature store (no {STORE_FILE}); make one with "
                                f"python -m vccv_gpu.extract VIDEOS --out {root}")
    meta = _read_json(path, "feature store description")
    try:
        BackboneConfig.from_dict(meta["backbones"])
    except (KeyError, TypeError, ValueError) as e:
        raise FeatureStoreError(f"{path}: bad backbone config ({e})") from None
    return meta


def _dims(config: BackboneConfig) -> dict[str, Any]:
    return {"n_frames": config.num_segments, "grid": list(config.grid), "d_i": config.d_i, "d_r": config.d_r}


def _jsonl_sizes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in jsonl.rank_files(root, _INDEX_RANK)}


def _collect_entries(root: Path) -> dict[str, dict[str, Any]]:
    """key -> index record from every rank's jsonl, keeping only videos whose shard exists
    (later records of a key win)."""
    entries: dict[str, dict[str, Any]] = {}
    present: dict[str, bool] = {}
    for path in jsonl.rank_files(root, _INDEX_RANK):
        for record in _records(path):
            key, shard = record.get("key"), record.get("shard")
            if not isinstance(key, str) or not isinstance(shard, str):
                continue
            if shard not in present:
                present[shard] = (root / shard).is_file()
            if present[shard]:
                entries[key] = record
    return entries


# -----------------------------------------------------------------------------------------------
# Creating and finishing a store


def prepare_store(root: str | os.PathLike[str], extractor: Any) -> str:
    """Starts a store for `extractor` (a FeatureExtractor), or checks that an existing one was
    started with the same config and weights; returns the weights fingerprint.

    A new store gets `backbones.safetensors` and then `store.json` (each written atomically; the
    store counts as started once `store.json` exists). Raises FeatureStoreError on a mismatch.
    """
    root = Path(root)
    config: BackboneConfig = extractor.config
    fingerprint = weights_fingerprint(extractor.state_dict())
    if (root / STORE_FILE).is_file():
        meta = _store_meta(root)
        stored = BackboneConfig.from_dict(meta["backbones"])
        if stored != config:
            raise FeatureStoreError(
                f"{root}: this store holds features of backbones {stored.to_dict()}, not {config.to_dict()}; "
                f"use another --out folder (or the store's own {BACKBONES_FILE} via --backbones)")
        if meta.get("weights_sha256") != fingerprint:
            raise FeatureStoreError(
                f"{root}: this store holds features of other {config.iframe}/{config.residual} weights "
                f"(fingerprint {str(meta.get('weights_sha256'))[:12]}, the extractor's is {fingerprint[:12]}); "
                f"use another --out folder (or the store's own {BACKBONES_FILE} via --backbones)")
        return fingerprint
    root.mkdir(parents=True, exist_ok=True)
    extractor.save(root / BACKBONES_FILE)
    meta = {"format": FORMAT, "backbones": config.to_dict(), "dims": _dims(config), "weights_sha256": fingerprint}
    _write_atomic(root / STORE_FILE, json.dumps(meta, indent=1) + "\n")
    return fingerprint


def merge_index(root: str | os.PathLike[str]) -> Path:
    """Writes `index.json` (config, dims, {key: shard}, per-video sampling info) and `errors.jsonl`
    from every rank's jsonl files; returns the index path. Errors of videos that were extracted
    later are dropped; for a video that failed more than once, the last reason is kept."""
    root = Path(root)
    meta = _store_meta(root)
    sizes = _jsonl_sizes(root)  # before reading: a line appended meanwhile makes the index outdated
    entries = _collect_entries(root)
    index = {
        "format": FORMAT,
        "backbones": meta["backbones"],
        "dims": meta["dims"],
        "weights_sha256": meta["weights_sha256"],
        "sources": sizes,
        "videos": {key: entries[key]["shard"] for key in sorted(entries)},
        "info": {key: {k: v for k, v in entries[key].items() if k not in ("key", "shard")}
                 for key in sorted(entries)},
    }
    errors: dict[str, dict[str, Any]] = {}
    for path in jsonl.rank_files(root, _ERRORS_RANK):
        for record in _records(path):
            if isinstance(record.get("path"), str):
                errors[record["path"]] = record
    lines = [json.dumps(r) + "\n" for p, r in sorted(errors.items()) if video_key(p) not in entries]
    _write_atomic(root / ERRORS_FILE, "".join(lines))
    _write_atomic(root / INDEX_FILE, json.dumps(index) + "\n")
    return root / INDEX_FILE


# -----------------------------------------------------------------------------------------------
# Writing


@dataclass
class _Pending:
    """Videos buffered for the next shard."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)


class StoreWriter:
    """Appends one rank's videos to a prepared store (see `prepare_store`), one shard at a time.

    `done` holds the keys already in the store (from every rank's index, read at start): the
    caller skips them. `add` buffers a video; every `shard_size` videos the shard is written by a
    background thread (at most one write in flight) while extraction goes on. `close` writes
    the last, partial shard. One process per rank and store: a lock file refuses a second one.
    """

    def __init__(self, root: str | os.PathLike[str], rank: int = 0, shard_size: int = 256) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        if rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        self.root = Path(root)
        self.rank = rank
        self.shard_size = shard_size
        self.config = BackboneConfig.from_dict(_store_meta(self.root)["backbones"])
        self._lock = self._take_lock()
        self._index_path = self.root / f"index-rank{rank}.jsonl"
        self._errors_path = self.root / f"errors-rank{rank}.jsonl"
        self._clean_leftovers()
        self.done: set[str] = set(_collect_entries(self.root))
        self._next_shard = 1 + max((int(m.group(2)) for p in self.root.iterdir()
                                    if (m := _SHARD.match(p.name)) and int(m.group(1)) == rank), default=-1)
        self._pending = _Pending()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"StoreWriter{rank}")
        self._in_flight: Future[None] | None = None
        self._index = jsonl.Appender(self._index_path)  # each repairs a torn last line first
        self._errors = jsonl.Appender(self._errors_path)
        self.written = 0  # videos committed by this writer

    def _take_lock(self) -> IO[bytes]:
        lock = open(self.root / f".rank{self.rank}.lock", "wb")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise FeatureStoreError(f"{self.root}: another process is already writing rank {self.rank} "
                                    "of this store") from None
        return lock

    def _clean_leftovers(self) -> None:
        """Removes what a killed run of this rank left behind (safe: we hold the rank's lock):
        half-written shards, and shards that were renamed into place before any of their index
        lines were written (their videos are not in the store and get extracted again)."""
        prefix = f".rank{self.rank}-"
        referenced = {r.get("shard") for r in _records(self.root / f"index-rank{self.rank}.jsonl")}
        for p in self.root.iterdir():
            m = _SHARD.match(p.name)
            stale_tmp = p.name.startswith(prefix) and p.name.endswith(".tmp")
            orphan = m is not None and int(m.group(1)) == self.rank and p.name not in referenced
            if stale_tmp or orphan:
                p.unlink(missing_ok=True)

    def add(self, key: str, v_i: Tensor, a_r: Tensor, info: Mapping[str, Any] | None = None) -> None:
        """Buffers one video's features (stored as fp16 on the CPU) and its sampling info."""
        cfg = self.config
        want_i = (cfg.num_segments, *cfg.grid, cfg.d_i)
        want_r = (cfg.num_segments, *cfg.grid, cfg.d_r)
        if tuple(v_i.shape) != want_i or tuple(a_r.shape) != want_r:
            raise ValueError(f"{key}: features of shape {list(v_i.shape)} / {list(a_r.shape)}, "
                             f"the store's config needs {list(want_i)} / {list(want_r)}")
        if f"v_i:{key}" in self._pending.tensors:
            raise ValueError(f"{key}: added twice")
        self._pending.tensors[f"v_i:{key}"] = v_i.detach().to("cpu", torch.float16).contiguous()
        self._pending.tensors[f"a_r:{key}"] = a_r.detach().to("cpu", torch.float16).contiguous()
        self._pending.records.append({"key": key, **(info or {})})
        if len(self._pending.records) >= self.shard_size:
            self.flush()

    def error(self, error: VideoError) -> None:
        """Records a video that could not be read."""
        self._errors.write([{"path": str(error.path), "reason": error.reason, "kind": error.kind}])

    def flush(self) -> None:
        """Hands the buffered videos to the background thread as one shard (waits for the previous)."""
        if not self._pending.records:
            return
        self._wait()
        pending, self._pending = self._pending, _Pending()
        name = f"rank{self.rank}-{self._next_shard:05d}.safetensors"
        self._next_shard += 1
        self._in_flight = self._pool.submit(self._write_shard, name, pending)

    def _wait(self) -> None:
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            future.result()  # a failed write (disk full, ...) surfaces here

    def _write_shard(self, name: str, pending: _Pending) -> None:
        from safetensors.torch import save_file

        path = self.root / name
        tmp = self.root / f".{name[:-len('.safetensors')]}.{os.getpid()}.tmp"
        save_file(pending.tensors, str(tmp), metadata={"vccv_features": json.dumps(
            {"format": FORMAT, "backbones": self.config.to_dict()})})
        os.chmod(tmp, 0o644)  # safetensors creates files readable by the owner only
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _publish(tmp, path)
        fsync_dir(self.root)
        self._index.write({**record, "shard": name} for record in pending.records)
        self.written += len(pending.records)

    def close(self) -> None:
        """Writes the last shard and waits for it; the writer cannot be used afterwards."""
        try:
            self.flush()
            self._wait()
        finally:
            self._release()

    def abort(self) -> None:
        """Drops the buffered videos, finishes a write in flight, releases the files."""
        self._pending = _Pending()
        try:
            self._wait()
        finally:
            self._release()

    def _release(self) -> None:
        self._pool.shutdown(wait=True)
        self._index.close()
        self._errors.close()
        self._lock.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _publish(tmp: Path, path: Path) -> None:
    """Moves a complete, fsynced shard into place (the one step that makes it visible)."""
    os.replace(tmp, path)


# -----------------------------------------------------------------------------------------------
# Reading


class FeatureStore:
    """Read access to a store folder (see the module docstring); nothing is loaded until `load`.

    Args:
        root: the store folder.
        open_shards: how many shard files to keep open (memory-mapped) between loads.
    """

    def __init__(self, root: str | os.PathLike[str], open_shards: int = 8) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FeatureStoreError(f"{self.root}: feature store folder not found")
        meta = _store_meta(self.root)
        self.config: BackboneConfig = BackboneConfig.from_dict(meta["backbones"])
        self.weights_sha256: str = meta["weights_sha256"]
        self._videos, self._info = self._read_index()
        self._open_shards = max(1, int(open_shards))
        self._handles: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def _read_index(self) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """index.json when it is up to date with the jsonl files, else the jsonl files."""
        index_path = self.root / INDEX_FILE
        if index_path.is_file():
            index = _read_json(index_path, "feature index")
            if index.get("sources") == _jsonl_sizes(self.root):
                return dict(index["videos"]), dict(index.get("info", {}))
        entries = _collect_entries(self.root)
        return ({k: e["shard"] for k, e in sorted(entries.items())},
                {k: {f: v for f, v in e.items() if f not in ("key", "shard")} for k, e in entries.items()})

    @property
    def backbones_path(self) -> Path | None:
        """The extractor that made these features (`FeatureExtractor.load`), if the file is there."""
        path = self.root / BACKBONES_FILE
        return path if path.is_file() else None

    def keys(self) -> list[str]:
        """The stored videos' keys (`video_key` of their paths), sorted."""
        return list(self._videos)

    def __iter__(self) -> Iterator[str]:
        return iter(self._videos)

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (str, os.PathLike)) and self._resolve(key) is not None

    def _resolve(self, key: str | os.PathLike[str]) -> str | None:
        """A key as stored; a path that is not a key as given is tried as `video_key(path)`."""
        if isinstance(key, str) and key in self._videos:
            return key
        resolved = video_key(key)
        return resolved if resolved in self._videos else None

    def info(self, key: str | os.PathLike[str]) -> dict[str, Any]:
        """How the video was sampled: frames, residual_frames, policy, fps, duration."""
        return dict(self._info.get(self._require(key), {}))

    def _require(self, key: str | os.PathLike[str]) -> str:
        resolved = self._resolve(key)
        if resolved is None:
            raise KeyError(f"{key}: not in the feature store {self.root} ({len(self)} videos)")
        return resolved

    def _shard(self, name: str) -> Any:
        from safetensors import safe_open

        with self._lock:
            handle = self._handles.get(name)
            if handle is not None:
                self._handles.move_to_end(name)
                return handle
            path = self.root / name
            if not path.is_file():
                raise FeatureStoreError(f"{path}: shard listed in the index is missing")
            try:
                handle = safe_open(str(path), framework="pt")
            except Exception as e:  # a damaged file: name it
                raise FeatureStoreError(f"{path}: unreadable shard ({e})") from None
            self._handles[name] = handle
            while len(self._handles) > self._open_shards:
                self._handles.popitem(last=False)
            return handle

    def load(self, key: str | os.PathLike[str]) -> tuple[Tensor, Tensor]:
        """(v_i fp16 [N,H,W,D_I], a_r fp16 [N,H,W,D_r]) of one video, read from its shard."""
        key = self._require(key)
        shard = self._shard(self._videos[key])
        try:
            return shard.get_tensor(f"v_i:{key}"), shard.get_tensor(f"a_r:{key}")
        except Exception as e:  # safetensors raises its own error types for a missing tensor
            raise FeatureStoreError(f"{self.root / self._videos[key]}: no features of {key} ({e})") from None

    def errors(self) -> list[VideoError]:
        """The videos that could not be read (from `errors.jsonl`, else the per-rank files)."""
        merged = self.root / ERRORS_FILE
        paths = [merged] if merged.is_file() else jsonl.rank_files(self.root, _ERRORS_RANK)
        out: dict[str, VideoError] = {}
        for path in paths:
            for r in _records(path):
                if isinstance(r.get("path"), str) and video_key(r["path"]) not in self._videos:
                    out[r["path"]] = VideoError(r["path"], str(r.get("reason", "")), str(r.get("kind", "")))
        return list(out.values())

    def close(self) -> None:
        """Releases the open shard files."""
        with self._lock:
            self._handles.clear()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r}, {len(self)} videos, {self.config})"

