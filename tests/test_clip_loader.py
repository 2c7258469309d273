"""codec.ClipLoader: batching, order, per-clip errors, bounded prefetch, early stop."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tools.clips import make_foreign_clip
from vccv_gpu import codec
from vccv_gpu.codec import loader as loader_mod
from vccv_gpu.codec.loader import THREAD_NAME_PREFIX, ClipBatch, ClipError, ClipLoader

N, S = 4, 32
CLIP: dict[str, Any] = {"size": (96, 64), "frames": 24, "gop": 6}


@pytest.fixture(scope="module")
def clips(clip_factory: Callable[..., Path]) -> list[Path]:
    """Five different small clips: keyframe policy (4 GOPs) and the decoded fallback (gop 12)."""
    return [clip_factory(**CLIP, seed=0), clip_factory(**CLIP, seed=1), clip_factory(**CLIP, seed=2),
            clip_factory(size=(96, 64), frames=24, gop=12, seed=3),
            clip_factory(size=(96, 64), frames=20, gop=6, bframes=2, seed=4)]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, clips: list[Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    junk = root / "junk.mp4"
    junk.write_bytes(os.urandom(4000))
    data = clips[0].read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    foreign = make_foreign_clip(root / "foreign.mp4", "mpeg4", size=(96, 64), frames=6)
    return {"junk": junk, "truncated": truncated, "foreign": foreign, "missing": root / "missing.mp4"}


def loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX) and t.is_alive()]


def wait_no_loader_threads(timeout: float = 5.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while loader_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    return loader_threads()


def check_batch(batch: ClipBatch, b: int) -> None:
    assert batch.iframes.shape == (b, N, 3, S, S) and batch.iframes.dtype == torch.uint8
    assert batch.residuals.shape == (b, N, 3, S, S) and batch.residuals.dtype == torch.float16
    assert len(batch.samples) == len(batch.paths) == len(batch) == b


def test_exported_lazily() -> None:
    assert codec.ClipLoader is ClipLoader
    assert "ClipLoader" in codec.__all__


def test_batches_shapes_order_and_equal_to_sample_clip(clips: list[Path]) -> None:
    paths = clips + clips[:2]  # 7 clips: batches of 3, 3, 1
    loader = ClipLoader(paths, batch_size=3, num_segments=N, size=S, workers=2, prefetch=1, progress=False)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [p for b in batches for p in b.paths] == paths
    for batch in batches:
        check_batch(batch, len(batch))
        assert batch.errors == []
        for i, (path, sample) in enumerate(zip(batch.paths, batch.samples)):
            direct = codec.sample_clip(path, num_segments=N, size=S, residual="middle")
            assert torch.equal(batch.iframes[i], direct.iframes)
            assert torch.equal(batch.residuals[i], direct.residuals)
            assert torch.equal(sample.iframes, direct.iframes) and torch.equal(sample.residuals, direct.residuals)
            assert sample.frame_indices == direct.frame_indices
            assert sample.residual_indices == direct.residual_indices
            assert sample.policy == direct.policy and sample.fps == direct.fps
    assert {s.policy for b in batches for s in b.samples} == {"keyframes", "decoded"}
    assert wait_no_loader_threads() == []


def test_residual_mode_and_single_worker(clips: list[Path]) -> None:
    loader = ClipLoader(clips[:2], batch_size=2, num_segments=N, size=S, workers=1, prefetch=0,
                        residual="sum", progress=False)
    (batch,) = list(loader)
    for path, sample in zip(batch.paths, batch.samples):
        direct = codec.sample_clip(path, num_segments=N, size=S, residual="sum")
        assert torch.equal(sample.residuals, direct.residuals)
        assert sample.residual_frames == direct.residual_frames


def test_keep_aspect_is_passed_to_sample_clip(clips: list[Path]) -> None:
    (batch,) = list(ClipLoader(clips[:1], batch_size=1, num_segments=N, size=S, workers=1, progress=False,
                               keep_aspect=True))
    direct = codec.sample_clip(clips[0], num_segments=N, size=S, keep_aspect=True)
    squashed = codec.sample_clip(clips[0], num_segments=N, size=S)
    assert torch.equal(batch.iframes[0], direct.iframes) and torch.equal(batch.residuals[0], direct.residuals)
    assert not torch.equal(direct.iframes, squashed.iframes)  # the clip is not square: the option matters


def test_bad_files_become_errors_of_their_batch(clips: list[Path], bad_files: dict[str, Path]) -> None:
    paths = [clips[0], bad_files["junk"], clips[1], bad_files["truncated"],
             bad_files["foreign"], clips[2], bad_files["missing"], clips[3]]
    batches = list(ClipLoader(paths, batch_size=4, num_segments=N, size=S, workers=3, progress=False))
    assert len(batches) == 2
    assert batches[0].paths == [clips[0], clips[1]]
    assert batches[1].paths == [clips[2], clips[3]]
    check_batch(batches[0], 2)
    check_batch(batches[1], 2)
    errors = {e.path: e for b in batches for e in b.errors}
    assert [e.path for e in batches[0].errors] == [bad_files["junk"], bad_files["truncated"]]
    assert [e.path for e in batches[1].errors] == [bad_files["foreign"], bad_files["missing"]]
    for err in errors.values():
        assert isinstance(err, ClipError) and err.reason
    assert errors[bad_files["foreign"]].kind == "UnsupportedStream"
    assert errors[bad_files["missing"]].kind == "FileNotFoundError"
    for key in ("junk", "truncated"):
        assert errors[bad_files[key]].kind in ("CorruptStream", "UnsupportedStream")
    # The good clips are exactly what sample_clip gives.
    direct = codec.sample_clip(clips[2], num_segments=N, size=S)
    assert torch.equal(batches[1].iframes[0], direct.iframes)


def test_all_bad_batch_is_empty_with_errors(clips: list[Path], bad_files: dict[str, Path]) -> None:
    paths = [bad_files["junk"], bad_files["foreign"], clips[0]]
    batches = list(ClipLoader(paths, batch_size=2, num_segments=N, size=S, progress=False))
    check_batch(batches[0], 0)
    assert [e.path for e in batches[0].errors] == [bad_files["junk"], bad_files["foreign"]]
    check_batch(batches[1], 1)
    assert batches[1].paths == [clips[0]] and batches[1].errors == []


def test_other_exceptions_propagate_and_threads_end(clips: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Any, **kw: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(loader_mod, "sample_clip", broken)
    with pytest.raises(RuntimeError, match="bug"):
        list(ClipLoader(clips * 2, batch_size=2, num_segments=N, size=S, progress=False))
    assert wait_no_loader_threads() == []


def test_bad_arguments() -> None:
    for kwargs in ({"batch_size": 0}, {"workers": 0}, {"prefetch": -1}, {"residual": "mean"},
                   {"num_segments": 0}, {"size": 0}):
        with pytest.raises(ValueError):
            ClipLoader(["a.mp4"], **kwargs)
    with pytest.raises(TypeError):
        ClipLoader("a.mp4")
    assert len(ClipLoader([], batch_size=4)) == 0 and list(ClipLoader([], progress=False)) == []
    assert len(ClipLoader(["a"] * 9, batch_size=4)) == 3


class Counting:
    """Wraps sample_clip, counting the calls started."""

    def __init__(self) -> None:
        self.started = 0
        self.lock = threading.Lock()
        self.real = loader_mod.sample_clip

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.started += 1
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_prefetch_is_bounded(clips: list[Path], monkeypatch: pytest.MonkeyPatch, prefetch: int) -> None:
    counter = Counting()
    monkeypatch.setattr(loader_mod, "sample_clip", counter)
    batch_size, workers = 2, 2
    paths = [clips[i % 3] for i in range(20)]
    bound = (prefetch + 1) * batch_size + workers
    consumed = 0
    worst = 0
    for batch in ClipLoader(paths, batch_size=batch_size, num_segments=N, size=S, workers=workers,
                            prefetch=prefetch, progress=False):
        consumed += len(batch)
        for _ in range(4):  # a slow consumer: the workers have time to run ahead if they could
            time.sleep(0.05)
            worst = max(worst, counter.started - consumed)
            assert counter.started - consumed <= bound
    assert consumed == len(paths) and counter.started == len(paths)
    if prefetch:
        assert worst >= batch_size  # it does prepare ahead
    assert wait_no_loader_threads() == []


def test_early_break_leaves_no_threads(clips: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counting()
    monkeypatch.setattr(loader_mod, "sample_clip", counter)
    paths = [clips[i % 3] for i in range(40)]
    loader = ClipLoader(paths, batch_size=2, num_segments=N, size=S, workers=3, prefetch=2, progress=False)
    for i, batch in enumerate(loader):
        check_batch(batch, 2)
        if i == 1:
            break
    assert wait_no_loader_threads() == []
    started = counter.started
    time.sleep(0.2)
    assert counter.started == started <= 2 * 2 + 2 * 2 + 3  # the cancelled clips never ran

    # Closing a half-consumed iterator explicitly does the same.
    it = iter(loader)
    next(it)
    assert loader_threads()
    it.close()
    assert wait_no_loader_threads() == []
    # The loader can be iterated again from the start.
    assert [len(b) for b in loader][:3] == [2, 2, 2]


def test_progress_bar_counts_clips(clips: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    list(ClipLoader(clips[:3], batch_size=2, num_segments=N, size=S, progress=True))
    err = capsys.readouterr().err
    assert "3/3" in err and "clip" in err
    list(ClipLoader(clips[:3], batch_size=2, num_segments=N, size=S))  # not a TTY: off by default
    assert capsys.readouterr().err == ""


def test_batches_move_to_device(clips: list[Path]) -> None:
    """Sampling runs on the CPU; the stacked batch (and the samples' views) go to `device`.
    The meta device stands in for a GPU here."""
    loader = ClipLoader(clips[:3], batch_size=2, num_segments=N, size=S, device="meta", progress=False)
    batches = list(loader)
    assert [len(b) for b in batches] == [2, 1]
    for batch in batches:
        check_batch(batch, len(batch))
        assert batch.iframes.device.type == batch.residuals.device.type == "meta"
        assert all(s.iframes.device.type == s.residuals.device.type == "meta" for s in batch.samples)
