"""`python -m vccv_gpu.caption` and its in-process API, on generated clips with a tiny random model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import tiny_checkpoint

from vccv_gpu.attention import MAX_WORDS, attention_maps, draw_attention
from vccv_gpu.caption import (
    CaptionResult,
    UsageError,
    attention_names,
    caption_videos,
    collect_videos,
    main,
    read_records,
)
from vccv_gpu.checkpoint import checkpoint_sha256, load_checkpoint

KEYS = {"path", "caption", "score", "seconds", "checkpoint", "checkpoint_sha256"}


def _env() -> dict[str, str]:
    # Subprocesses share the machine's 2 cores with the test process.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def cli_json(clips: Path, checkpoint: Path) -> list[dict]:
    """The --json output of one CLI run over the clip folder (shared by several tests)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(clips), "--checkpoint", str(checkpoint), "--json", "--device", "cpu"])
    assert status == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_help_describes_the_command(cli_help: Callable[..., str]) -> None:
    text = cli_help(main, "python -m vccv_gpu.caption")
    for option in ("--checkpoint", "--beam", "--out", "--attention", "--json", "--backend", "seconds"):
        assert option in text


def test_missing_checkpoint_is_a_clear_usage_error(tmp_path: Path, videos: list[Path]) -> None:
    missing = tmp_path / "no_such_run"
    run = subprocess.run([sys.executable, "-m", "vccv_gpu.caption", str(videos[0]), "--checkpoint", str(missing)],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert str(missing) in run.stderr and "not found" in run.stderr
    assert run.stdout == ""


def test_checkpoint_that_cannot_caption_video(tmp_path: Path, clips: Path, videos: list[Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    no_backbones = tiny_checkpoint(tmp_path / "features_only", clips, with_backbones=False)
    assert main([str(videos[0]), "--checkpoint", str(no_backbones)]) == 2
    assert "has no backbones" in capsys.readouterr().err


def test_plain_output_is_path_tab_caption(clips: Path, videos: list[Path], checkpoint: Path,
                                          cli_json: list[dict], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(clips), "--checkpoint", str(checkpoint), "--batch", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(v) for v in videos]
    # The same captions as the JSON run, which batched the clips differently (4 vs 3 + 1).
    assert [line.split("\t", 1)[1] for line in lines] == [r["caption"] for r in cli_json]


def test_json_output_schema(videos: list[Path], checkpoint: Path, cli_json: list[dict]) -> None:
    assert [r["path"] for r in cli_json] == [str(v) for v in videos]
    for record in cli_json:
        assert set(record) == KEYS
        assert isinstance(record["caption"], str) and record["caption"]
        assert isinstance(record["score"], float) and record["score"] < 0
        assert isinstance(record["seconds"], float) and record["seconds"] > 0
    # One batch: every video gets the same share of its wall time.
    assert len({r["seconds"] for r in cli_json}) == 1
    # Which model wrote it: the checkpoint's folder and the hash of its files.
    assert {r["checkpoint"] for r in cli_json} == {str(checkpoint.resolve())}
    assert {r["checkpoint_sha256"] for r in cli_json} == {checkpoint_sha256(checkpoint)}


def test_checkpoint_hash_follows_the_weights(tmp_path: Path, clips: Path, checkpoint: Path) -> None:
    copy = shutil.copytree(checkpoint, tmp_path / "copy")
    assert checkpoint_sha256(copy) == checkpoint_sha256(checkpoint)  # contents, not the folder's name
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    assert checkpoint_sha256(copy) != checkpoint_sha256(checkpoint)


def test_bad_file_is_reported_and_the_rest_captioned(tmp_path: Path, videos: list[Path], checkpoint: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.mp4").write_bytes(os.urandom(3000))
    good = tmp_path / "good.mp4"
    shutil.copy(videos[0], good)
    (tmp_path / "notes.txt").write_text("not a video, not collected")
    assert main([str(tmp_path), "--checkpoint", str(checkpoint), "--json"]) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["path"] for line in captured.out.splitlines()] == [str(good.resolve())]
    assert f"error: {(tmp_path / 'broken.mp4').resolve()}: " in captured.err
    assert "1 video could not be captioned" in captured.err
    assert "Traceback" not in captured.err


def test_missing_path_is_a_usage_error_before_any_work(tmp_path: Path, videos: list[Path], checkpoint: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "gone.mp4"
    out = tmp_path / "o.jsonl"
    assert main([str(videos[1]), str(missing), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"error: {missing}: no such file or directory\n"
    assert not out.exists()


def _deny_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """`folder` cannot be listed, as with mode 000 for another user (root ignores the mode, so
    the denial is also simulated where os.walk lists folders)."""
    folder.chmod(0)
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_folder_is_reported_and_the_rest_captioned(tmp_path: Path, videos: list[Path], checkpoint: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(videos[0], tmp_path / "good.mp4")
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(videos[1], locked / "hidden.mp4")
    _deny_listing(monkeypatch, locked)
    try:
        assert main([str(tmp_path), "--checkpoint", str(checkpoint)]) == 1
        captured = capsys.readouterr()
        assert captured.out.startswith(f"{(tmp_path / 'good.mp4').resolve()}\t")
        assert f"error: permission denied: {locked}" in captured.err
        # Given directly: the same report, not "no videos in this directory".
        assert main([str(locked), "--checkpoint", str(checkpoint)]) == 1
        err = capsys.readouterr().err
        assert f"error: permission denied: {locked}" in err and "no videos" not in err
    finally:
        locked.chmod(0o755)


def test_resume_after_a_torn_write(tmp_path: Path, clips: Path, videos: list[Path], checkpoint: Path,
                                   cli_json: list[dict], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "captions.jsonl"
    args = [str(clips), "--checkpoint", str(checkpoint), "--out", str(out), "--batch", "2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # with --out the results go to the file only
    assert "captioning 4 videos" in captured.err
    lines = out.read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == [str(v) for v in videos]
    assert [json.loads(line)["caption"] for line in lines] == [r["caption"] for r in cli_json]

    # A kill mid-write: the last line lost, half of it written.
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "torn last line" in err
    assert f"captioning 1 video (3 already in {out})" in err
    after = out.read_text()
    assert after.endswith("\n")
    resumed = after.splitlines()
    assert resumed[:3] == lines[:3]  # finished lines untouched
    assert json.loads(resumed[3])["path"] == str(videos[3])
    assert len(resumed) == 4

    # Nothing left to do: a third run adds nothing.
    assert main(args) == 0
    assert "captioning 0 videos (4 already in" in capsys.readouterr().err
    assert out.read_text() == after


def test_damaged_line_inside_the_file_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "captions.jsonl"
    out.write_text('{"path": "/a.mp4", "caption": "x"}\nnot json\n{"path": "/b.mp4", "caption": "y"}\n')
    with pytest.raises(UsageError, match="line 2"):
        read_records(out)
    out.write_text('{"path": "/a.mp4", "caption": "x"}\n{"path": "/b.mp4", "cap')
    assert [r["path"] for r in read_records(out)] == ["/a.mp4"]
    assert out.read_text().endswith("cap")  # reading alone does not repair
    read_records(out, repair=True)
    assert out.read_text() == '{"path": "/a.mp4", "caption": "x"}\n'


def test_api_equals_the_cli(videos: list[Path], checkpoint: Path, cli_json: list[dict]) -> None:
    results = list(caption_videos(videos, load_checkpoint(checkpoint), batch_size=8, device="cpu"))
    assert all(isinstance(r, CaptionResult) for r in results)
    assert [(r.path, r.caption) for r in results] == [(d["path"], d["caption"]) for d in cli_json]
    assert [r.score for r in results] == pytest.approx([d["score"] for d in cli_json], abs=1e-5)


def test_api_equals_sampling_backbones_and_beam_search(tmp_path: Path, videos: list[Path],
                                                       checkpoint: Path) -> None:
    from vccv_gpu.codec import sample_clip
    from vccv_gpu.codec.loader import ClipError

    ckpt = load_checkpoint(checkpoint)
    config = ckpt.backbones.config
    sample = sample_clip(videos[2], num_segments=config.num_segments, size=config.size,
                         residual=config.residual_mode)
    with torch.inference_mode():
        v_i, a_r = ckpt.backbones(sample.iframes[None], sample.residuals[None])
        best = ckpt.model.generate(v_i, a_r, beam_size=3)[0][0]
    missing = tmp_path / "missing.mp4"
    results = list(caption_videos([missing, videos[2]], ckpt, beam=3, batch_size=2))
    assert isinstance(results[0], ClipError) and results[0].path == str(missing)
    assert results[1].path == str(videos[2])
    assert results[1].caption == ckpt.vocab.decode(best.tokens)
    assert results[1].score == pytest.approx(best.log_prob, abs=1e-5)


def test_attention_maps_are_the_decoders(videos: list[Path], checkpoint: Path) -> None:
    from vccv_gpu.codec import sample_clip

    ckpt = load_checkpoint(checkpoint)
    config = ckpt.backbones.config
    sample = sample_clip(videos[0], num_segments=config.num_segments, size=config.size)
    with torch.inference_mode():
        v_i, a_r = ckpt.backbones(sample.iframes[None], sample.residuals[None])
    tokens = [4, 5, 6]
    attention, gate = attention_maps(ckpt.model, v_i, a_r, tokens)
    grid = ckpt.model.config.grid
    assert attention.shape == (3, config.num_segments, *grid) and gate.shape == (3, config.num_segments)
    assert attention.sum((2, 3)) == pytest.approx(torch.ones(3, config.num_segments), abs=1e-5)  # softmax per frame
    assert bool(((gate > 0) & (gate < 1)).all())
    # Teacher forcing: the step that predicts word t attends with h_{t-1}, which was computed before
    # word t-1 was fed in: it has seen the words before t - 1 only.
    again, gate_again = attention_maps(ckpt.model, v_i, a_r, [9, 5, 6])
    assert torch.equal(again[:2], attention[:2]) and torch.equal(gate_again[:2], gate[:2])
    assert not torch.equal(again[2], attention[2]) or not torch.equal(gate_again[2], gate[2])


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_attention_pictures(tmp_path: Path, videos: list[Path], checkpoint: Path) -> None:
    folder = tmp_path / "pictures"
    assert main([str(videos[0]), str(videos[1]), "--checkpoint", str(checkpoint), "--attention", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{v.stem}.png" for v in videos[:2])
    for png in folder.iterdir():
        assert png.stat().st_size > 1000
        width, height = _png_size(png)
        assert width > 4 * 100 and height > 100  # a column per frame (4)

    # One row per word (up to MAX_WORDS): more words, a taller picture.
    frames = torch.randint(0, 256, (4, 3, 112, 112), dtype=torch.uint8)
    attention = torch.rand(MAX_WORDS, 4, 7, 7).softmax(-1)
    gate = torch.rand(MAX_WORDS, 4)
    heights = []
    for n_words in (2, 5, MAX_WORDS + 3):
        words = [f"w{i}" for i in range(n_words)]
        png = draw_attention(tmp_path / f"{n_words}.png", frames, words, attention, gate, " ".join(words))
        heights.append(_png_size(png)[1])
    assert heights[0] < heights[1] < heights[2]
    per_row = (heights[1] - heights[0]) / 3
    assert heights[2] == pytest.approx(heights[0] + (MAX_WORDS - 2) * per_row, abs=2)  # capped at MAX_WORDS rows
    # A variant without attention or gate: the frames alone, still a picture.
    plain = draw_attention(tmp_path / "plain.png", frames, ["a", "b"], None, None, "a b")
    assert _png_size(plain)[1] < heights[0]


def test_attention_names_disambiguate_equal_stems(tmp_path: Path) -> None:
    paths = [tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4", tmp_path / "b" / "other.mkv"]
    names = attention_names(paths)
    assert names[paths[2]] == "other.png"
    assert names[paths[0]] != names[paths[1]]
    assert all(names[p].startswith("clip-") and names[p].endswith(".png") for p in paths[:2])


def test_collect_videos_searches_directories(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("b.mp4", "sub/a.MKV", "sub/deeper/c.h264", "sub/readme.md", "sub/d.ts"):
        (tmp_path / name).write_bytes(b"x")
    explicit = tmp_path / "sub" / "readme.md"  # named explicitly: taken whatever its extension
    found = collect_videos([tmp_path, explicit, tmp_path / "b.mp4"])
    assert found == sorted(found, key=str)
    assert {p.name for p in found} == {"b.mp4", "a.MKV", "c.h264", "d.ts", "readme.md"}
    assert len(found) == 5  # b.mp4 once
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no videos"):
        collect_videos([empty])


def test_ray_engine_without_ray_names_the_extra(clips: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main([str(clips), "--checkpoint", str(checkpoint), "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert "--engine ray needs Ray Data" in err and "vccv_gpu[scale]" in err and "Traceback" not in err


def test_engine_options_need_the_ray_engine(clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(clips), "--sampling-workers", "2"])
    assert exit_info.value.code == 2
    assert "--sampling-workers needs --engine ray" in capsys.readouterr().err


def test_output_of_another_checkpoint_is_refused_or_recaptioned(tmp_path: Path, clips: Path, videos: list[Path],
                                                               checkpoint: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "captions.jsonl"
    assert main([str(videos[0]), str(videos[1]), "--out", str(out)]) == 0  # the bundled demo model
    demo_lines = out.read_text()
    err = capsys.readouterr().err
    assert "note: the bundled demo model only knows the generated shapes set" in err
    args = [str(clips), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{out} holds 2 captions by another checkpoint" in err and "--recaption" in err
    assert out.read_text() == demo_lines  # untouched
    assert main([*args, "--recaption"]) == 0
    assert "removed 2 captions by another checkpoint" in capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in records] == [str(v) for v in videos]
    assert {r["checkpoint_sha256"] for r in records} == {checkpoint_sha256(checkpoint)}


def test_attention_without_matplotlib_names_the_extra_before_any_work(
        tmp_path: Path, videos: list[Path], checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    pictures = tmp_path / "pictures"
    assert main([str(videos[0]), "--checkpoint", str(checkpoint), "--attention", str(pictures)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "vccv_gpu[viz]" in captured.err and "Traceback" not in captured.err
    assert not pictures.exists()
