"""Benchmarks on the CPU (timings are reported, never asserted): frontend.py's smoke run over 2
tiny generated clips and its baselines returning the frames the front end decodes; kernels.py's
smoke run, which skips torch.compile's CUDA-graph mode with a line saying so; engine_floor.py's
replay of a clip's CABAC bins, checked against their record; libavcodec_parse_share.py's
search of PyAV's libavcodec for its entropy decoders and its profile of a decode; parser_ab.py's
digest of a build against itself and its refusal of a folder without a build; ablation.py's runs
trained in parallel processes equal those trained one after another. Every script's --help
describes every option; make_demo.sh --help prints its usage without starting."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import libavcodec_parse_share  # noqa: E402

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


def one_clip_run(script: str, clip: Path, *options: str, timeout: int = 600) -> tuple[dict, str]:
    """A benchmark script's result for `clip` alone, one round (its --out JSON holds one row), and
    what it printed."""
    out = clip.with_suffix(".json")
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), str(clip), "--repeat", "1", "--out", str(out),
                           *options], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [row] = json.loads(out.read_text())
    return row, proc.stdout


def one_clip_row(script: str, clip: Path) -> dict:
    return one_clip_run(script, clip)[0]


def test_engine_floor_replays_every_recorded_bin(tmp_path: Path) -> None:
    # The replay checks each bin against the record and fails the run on any difference; the
    # generated clip has CABAC P and B pictures, with 8x8 transforms.
    clip = make_clip(tmp_path / "clip.mp4", size=(160, 96), frames=20, entropy="cabac", bframes=2)
    row = one_clip_row("engine_floor.py", clip)
    with codec.open(clip) as s:
        assert row["frames"] == len(s.frames) == 20
    assert row["bins"] > 20 * 60  # 60 macroblocks a frame, a bin at least each
    for column in ("c", "v", "vc", "engine", "branch_free"):
        assert math.isfinite(row[column]) and row[column] > 0


def test_libavcodec_entropy_decoders_found_by_their_tables() -> None:
    library = libavcodec_parse_share.Library(libavcodec_parse_share.loaded_libavcodec())
    users = {name: [f for f, tables in library.tables.items() if name in tables]
             for name in libavcodec_parse_share.ENTROPY_TABLES}
    # CABAC's decision code is inlined into each element's decoder; ue(v) into every header parser.
    assert len(users["CABAC"]) >= 3 and len(users["Exp-Golomb"]) >= 3
    assert all(library.function_at(f[0]) == f for f in users["CABAC"])
    assert any(library.calls.get(f) for f in users["CABAC"])  # the macroblock parser calls its helpers


def perf_refusal(folder: Path) -> str | None:
    """Why `perf record` cannot sample here (not installed, or not allowed), or None."""
    try:
        probe = subprocess.run(["perf", "record", "-q", "-k", "mono", "-e", "cpu-clock", "-o", str(folder / "probe"),
                                "--", "true"], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        return "no perf on this machine"
    return None if probe.returncode == 0 else f"perf record fails here: {probe.stderr.strip()[-300:]}"


def test_libavcodec_parse_share_of_a_cabac_decode(tmp_path: Path) -> None:
    refusal = perf_refusal(tmp_path)
    if refusal:
        pytest.skip(refusal)
    clip = make_clip(tmp_path / "clip.mp4", size=(320, 240), frames=100, entropy="cabac", bframes=2)
    row = one_clip_row("libavcodec_parse_share.py", clip)
    assert row["frames"] == 100 and row["samples"] > 100
    # Parsing is a real part of the decode but not all of it (reconstruction, the loop filter).
    assert 0.1 < row["parse_share"] < 0.9 and row["parse_functions"]
    assert 0.05 < row["no_unwind_entry_share"] < 0.9  # FFmpeg's assembly: the reconstruction's DSP
    for column in ("c", "vc"):
        assert math.isfinite(row[column]) and row[column] > 0


def test_libavcodec_parse_instructions_of_a_cavlc_decode(tmp_path: Path) -> None:
    refusal = perf_refusal(tmp_path)
    if refusal:
        pytest.skip(refusal)
    if shutil.which("valgrind") is None:
        pytest.skip("no valgrind on this machine")
    clip = make_clip(tmp_path / "clip.mp4", size=(160, 96), frames=10, entropy="cavlc")
    row, printed = one_clip_run("libavcodec_parse_share.py", clip, "--instructions", timeout=900)
    # 60 macroblocks a frame: each parse takes thousands of instructions a frame, neither all of a
    # frame's (libavcodec's decode also reconstructs it), and both mispredict some branches.
    assert 60 * 100 < row["lavc_parse_instructions"] < 60 * 20000
    assert 60 * 100 < row["our_instructions"] < 60 * 20000
    assert row["lavc_parse_mispredicted"] > 0 and row["our_mispredicted"] > 0
    assert "instructions (M)" in printed


def test_parser_ab_finds_a_build_equal_to_itself_and_refuses_a_folder_without_one(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", size=(160, 96), frames=10, entropy="cavlc")
    root = Path(__file__).resolve().parents[1]  # this checkout, its extension built in place
    out = tmp_path / "ab.json"
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "parser_ab.py"), str(root), str(root), str(clip),
                           "--rounds", "1", "--passes", "1", "--digest", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [row] = json.loads(out.read_text())
    assert row["clip"] == "clip.mp4" and row["same_arrays"] is True
    assert len(row["rounds"]) == 1 and math.isfinite(row["median"]) and row["median"] > 0
    assert "same arrays" in proc.stdout
    # A folder with no build of its own: the child would import another vccv_gpu, which is refused.
    empty = tmp_path / "no-build"
    empty.mkdir()
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "parser_ab.py"), str(root), str(empty), str(clip),
                           "--rounds", "1", "--passes", "1"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0 and "not from this build" in proc.stderr


SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
HELP_SECTIONS = ("positional arguments:", "options:", "optional arguments:")


def undescribed_options(help_text: str) -> tuple[list[str], list[str]]:
    """(every entry of argparse's argument sections, those without a description). An entry is a
    line indented by two spaces; its description follows on that line after two spaces or on the
    next, deeper-indented one."""
    entries: list[str] = []
    missing: list[str] = []
    lines = help_text.splitlines()
    in_section = False
    for i, line in enumerate(lines):
        if line and not line.startswith(" "):  # a section heading, or the description's or epilog's text
            in_section = line in HELP_SECTIONS
            continue
        if not in_section or not line.startswith("  ") or line.startswith("   "):
            continue
        invocation, _, description = line.strip().partition("  ")
        entries.append(invocation)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if not description.strip() and not (following.startswith("   ") and following.strip()):
            missing.append(invocation)
    return entries, missing


def test_ablation_trains_the_same_models_in_parallel_as_one_after_another(tmp_path: Path) -> None:
    """--jobs 2 (a process per run, one thread each) against --jobs 1 (in process, on one thread)
    on a tiny set: the same weights, test scores and grounding."""
    out = tmp_path / "ablation"
    command = [sys.executable, str(BENCHMARKS / "ablation.py"), "--out", str(out), "--scale", "0.05", "--epochs", "2",
               "--pretrain-epochs", "1", "--seeds", "2", "--variants", "rae"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parallel = subprocess.run([*command, "--jobs", "2"], capture_output=True, text=True, env=env, timeout=300,
                              check=False)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    assert "2 runs, 2 at a time, one thread each" in parallel.stderr
    (out / "runs").rename(tmp_path / "parallel")
    sequential = subprocess.run([*command, "--jobs", "1"], capture_output=True, text=True, env=env, timeout=300,
                                check=False)
    assert sequential.returncode == 0, sequential.stderr[-3000:]
    assert "at a time" not in sequential.stderr
    compared = [f.relative_to(tmp_path / "parallel") for f in (tmp_path / "parallel").rglob("*")
                if f.name in ("model.safetensors", "test-scores.json", "test-grounding.json")]
    assert len(compared) == 2 * 4  # per seed: best and last weights, scores, grounding
    for name in compared:
        assert (tmp_path / "parallel" / name).read_bytes() == (out / "runs" / name).read_bytes(), name
    assert json.loads((tmp_path / "parallel" / "rae-seed1" / "test-grounding.json").read_text())


def test_undescribed_options_are_found() -> None:
    text = ("usage: x [-h] [--a A] [--long-option-name LONG_OPTION_NAME] [--bare]\n\nDescription:\n"
            "  literal  not an option\n\npositional arguments:\n  videos\n\noptions:\n"
            "  -h, --help  show this help message and exit\n  --a A       an option\n"
            "  --long-option-name LONG_OPTION_NAME\n              described on the next line\n"
            "  --bare\n  --c C       wrapped\n              over two lines\n\nEpilog:\n  --not-an-option\n")
    entries, missing = undescribed_options(text)
    assert entries == ["videos", "-h, --help", "--a A", "--long-option-name LONG_OPTION_NAME", "--bare", "--c C"]
    assert missing == ["videos", "--bare"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_option_has_help(script: str) -> None:
    env = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries, missing = undescribed_options(proc.stdout)
    assert "-h, --help" in entries and len(entries) > 1, proc.stdout
    assert not missing, f"{script}: options without help: {missing}"


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))} if folder.exists() else {}


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_make_demo_help_prints_usage_and_starts_nothing(tmp_path: Path, flag: str) -> None:
    root = BENCHMARKS.parent
    watched = [root / "vccv_gpu" / "assets" / "demo", root / "build" / "demo", tmp_path]
    before = [_tree(folder) for folder in watched]
    assert before[0], "the bundled demo checkpoint is missing"
    proc = subprocess.run(["bash", str(BENCHMARKS / "make_demo.sh"), flag], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("Usage: bash benchmarks/make_demo.sh [--replace-bundled] [WORKDIR]")
    assert "--replace-bundled" in proc.stdout.split("\n", 1)[1] and "vccv_gpu/assets/demo" in proc.stdout
    assert [_tree(folder) for folder in watched] == before

    proc = subprocess.run(["bash", str(BENCHMARKS / "make_demo.sh"), "--no-such-option"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "unknown option --no-such-option" in proc.stderr and "Usage:" in proc.stderr
    assert [_tree(folder) for folder in watched] == before


def test_make_demo_refuses_a_workdir_holding_a_set_without_distractors(tmp_path: Path) -> None:
    # A WORKDIR made before issue 24 (one shape per clip) would otherwise be reused silently.
    data = tmp_path / "work" / "data"
    data.mkdir(parents=True)
    (data / "captions.csv").write_text("video,caption,split\n")
    (data / "positions.json").write_text(json.dumps({"videos/clip_00000.mp4": {"objects": [{"named": True}]}}))
    before = _tree(tmp_path)
    proc = subprocess.run(["bash", str(BENCHMARKS / "make_demo.sh"), str(tmp_path / "work")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "is not the demo's set (2 distractors per clip)" in proc.stderr, proc.stderr
    assert _tree(tmp_path) == before


def test_make_demo_refuses_backbones_pretrained_by_another_recipe(tmp_path: Path) -> None:
    # Backbones left in a WORKDIR by an older recipe (without --iframe-cells) would otherwise be reused.
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "captions.csv").write_text("video,caption,split\n")
    three = {"objects": [{"named": True}, {"named": False}, {"named": False}]}
    (work / "data" / "positions.json").write_text(json.dumps({"videos/clip_00000.mp4": three}))
    (work / "backbones.safetensors").write_bytes(b"weights of another recipe")
    before = _tree(tmp_path)
    proc = subprocess.run(["bash", str(BENCHMARKS / "make_demo.sh"), str(work)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "was pretrained with other arguments; remove it" in proc.stderr, proc.stderr
    assert _tree(tmp_path) == before
