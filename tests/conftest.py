"""Shared fixtures: generated clips (encoded once per session) and the PyAV oracle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests skip cleanly on machines without CUDA."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items or _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """make_clip with a session cache: the same settings are encoded only once per run.
    (Imported here: the GPU machine has no PyAV, and its GPU-only tests need no clips.)"""
    from tools.clips import make_clip

    root = tmp_path_factory.mktemp("clips")
    cache: dict[tuple, Path] = {}

    def get(suffix: str = ".mp4", **settings: Any) -> Path:
        key = (suffix, tuple(sorted(settings.items())))
        if key not in cache:
            cache[key] = make_clip(root / f"clip{len(cache)}{suffix}", **settings)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def conformance_stream() -> Callable[[str], Path]:
    """The path of a stream under shared/conformance, given relative to it; the test skips
    where that folder is absent (a checkout without the project's shared data), except in CI."""
    from conformance import CONFORMANCE, require_conformance

    def get(relative: str) -> Path:
        require_conformance()
        path = CONFORMANCE / relative
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not in the conformance set (MANIFEST.tsv)")
        return path

    return get


@pytest.fixture
def cli_help(capsys: pytest.CaptureFixture[str]) -> Callable[[Callable[[list[str]], int], str], str]:
    """Runs `main(["--help"])` of a CLI: checks that it exits 0 and starts with the usage line of
    `prog`, and returns the help text."""

    def run(main: Callable[[list[str]], int], prog: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: {prog}")
        return text

    return run


# Captioning (test_caption.py, test_ray_engine.py): generated clips and a tiny random model.


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 4 generated clips (plus their captions.csv one level up)."""
    from vccv_gpu.data.synthetic import generate

    root = tmp_path_factory.mktemp("caption_clips")
    generate(root, videos=4, size=(64, 48), frames=24)
    return root / "videos"


@pytest.fixture(scope="session")
def videos(clips: Path) -> list[Path]:
    found = sorted(p.resolve() for p in clips.glob("*.mp4"))
    assert len(found) == 4
    return found


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, clips: Path) -> Path:
    from tiny_models import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("caption_ckpt") / "tiny", clips)
