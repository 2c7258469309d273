"""Benchmarks on the CPU (timings are reported, never asserted): frontend.py's smoke run over 2
tiny generated clips and its baselines returning the frames the front end decodes; kernels.py's
smoke run, which skips torch.compile's CUDA-graph mode with a line saying so."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.clips import make_clip
from vccv_gpu import codec
from vccv_gpu.codec.pyav_frames import PyAVDecoder

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
COLUMNS = ["ours", "bound", "bound_all", "naive", "naive_all", "smart", "smart_all"]


def test_smoke_run_reports_default_and_same_core_columns(tmp_path: Path) -> None:
    out = tmp_path / "frontend.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the machine's cores are shared
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "frontend.py"), "--sizes", "160x96", "--seconds", "2",
                           "--segments", "4", "--repeat", "1", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["clip"], r["policy"]) for r in rows] == [("gop12-b0-96p.mp4", "keyframes"),
                                                        ("gop250-b3-96p.mp4", "decoded")]
    for r in rows:
        assert r["threads"] >= 1 and all(math.isfinite(r[c]) and r[c] > 0 for c in COLUMNS)
    for label in ("naive*", "smart*", "bound*", "ours x"):
        assert label in proc.stdout


@pytest.mark.parametrize("kw", [dict(gop=12, bframes=3), dict(gop=250, bframes=2)])
def test_baselines_return_the_decoded_frames_and_next_frame_differences(tmp_path: Path, kw: dict) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from frontend import naive, smart
    finally:
        sys.path.remove(str(BENCHMARKS))
    path = make_clip(tmp_path / "clip.mp4", size=(64, 48), frames=40, **kw)
    indices = [0, 11, 12, 25, 39]
    with codec.open(path) as s:
        ref = PyAVDecoder(workers=1).decode(path, s, sorted(set(indices) | {min(i + 1, 39) for i in indices}))
        for frames, diffs in (naive(path, indices), naive(path, indices, 2), smart(path, s, indices),
                              smart(path, s, indices, 2)):
            for i, frame, diff in zip(indices, frames, diffs, strict=True):
                assert np.array_equal(frame, ref[i])
                assert diff.dtype == np.int16 and np.array_equal(diff, ref[min(i + 1, 39)].astype(np.int16) - ref[i])


def test_kernels_smoke_run_skips_cuda_graphs_off_cuda(tmp_path: Path) -> None:
    out = tmp_path / "kernels.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "kernels.py"), "--device", "cpu", "--smoke",
                           "--skip", "compiled", "triton", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {(r["benchmark"], r["implementation"]) for r in results["results"]} == {
        (b, i) for b in ("encoder step", "decoding step", "training step") for i in ("literal", "reference")}
    assert list(results["skipped"]) == ["reduce-overhead"]
    assert "skipped: reduce-overhead (torch.compile's CUDA graphs need CUDA)" in proc.stdout
