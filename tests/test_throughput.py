"""benchmarks/throughput.py: a smoke run on the CPU over 2 tiny generated clips (timings are
reported, never asserted), and the random-weight model it falls back to."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from vccv_gpu.backbones import BackboneConfig, FeatureExtractor, model_config
from vccv_gpu.checkpoint import save_checkpoint
from vccv_gpu.data import Vocabulary
from vccv_gpu.model import VCCV

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
RATES = ["end to end", "demux + parse", "residual parse", "frame decode", "residual reconstruction (C++)",
         "backbones", "RAE + beam search", "(c) model only", "(d) decode only", "(a) naive", "(s) smart"]
RATIOS = {"end to end / min(c, d)", "end to end / s", "end to end / a"}


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("throughput_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    """One CPU run over the 2 generated clip kinds (GOP 12, GOP 250 with B-frames), 2 s at
    160x96, with a tiny saved checkpoint; returns results.json, the output folder and stdout."""
    tmp = tmp_path_factory.mktemp("throughput")
    torch.manual_seed(0)
    backbones = BackboneConfig("tiny", "tiny", size=112, num_segments=4)
    vocab = Vocabulary.build(["a red square moves left", "a blue circle moves right"], min_count=1)
    model = VCCV(model_config(backbones, len(vocab), embed=16, hidden=32, gate_dim=16, max_len=6))
    checkpoint = save_checkpoint(tmp / "ckpt", model, vocab, FeatureExtractor(backbones))
    out = tmp / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the machine's cores are shared
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--checkpoint", str(checkpoint),
                           "--sizes", "160x96", "--seconds", "2", "--batch", "2", "--repeat", "1", "--threads", "1",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out, proc.stdout


def test_results_have_every_stage_limit_baseline_and_ratio(smoke_run: tuple[dict, Path, str]) -> None:
    results, _, _ = smoke_run
    assert results["device"].startswith("CPU") and results["model"].startswith("checkpoint ")
    assert [g["name"] for g in results["groups"]] == ["gop12-b0-96p", "gop250-b3-96p"]
    for group in results["groups"]:
        assert group["clips"] == 2 and len(group["distinct_clips"]) == 1
        assert list(group["clips_per_s"]) == RATES
        assert set(group["ratios"]) == RATIOS
        for value in [*group["clips_per_s"].values(), *group["ratios"].values()]:
            assert math.isfinite(value) and value > 0
        assert "(s) smart (NVDEC)" in group["skipped"]  # a CPU run says why, never a number
    # GOP 12 over 50 frames has 5 keyframes >= 4 segments; GOP 250 has one keyframe.
    assert [g["policy"] for g in results["groups"]] == [["keyframes"], ["decoded"]]


def test_table_and_chart_are_written(smoke_run: tuple[dict, Path, str]) -> None:
    _, out, stdout = smoke_run
    for label in [*RATES, *RATIOS]:
        assert label in stdout
    png = (out / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_random_paper_and_tiny_models_fit_their_backbones() -> None:
    script = _load_script()
    tiny = script.random_checkpoint("tiny", segments=3, max_len=5)
    config = tiny.backbones.config
    frames = torch.zeros(1, 3, 3, config.size, config.size, dtype=torch.uint8)
    with torch.inference_mode():
        captions = tiny.model.generate(*tiny.backbones(frames, frames.half()), beam_size=2)
    assert len(captions[0][0].tokens) == 5  # <eos> never wins: every caption runs max_len steps
    fields, overrides, words = script.MODELS["paper"]
    paper = model_config(BackboneConfig(**fields), words, **overrides)  # without building ResNet-152
    assert (paper.d_i, paper.d_r, paper.grid, paper.n_frames, paper.embed, paper.hidden) == (
        2048, 512, (7, 7), 20, 500, 512)


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--checkpoint", str(tmp_path / "none"),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
