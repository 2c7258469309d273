"""`python -m vccv_gpu.caption` and its in-process API, on generated clips with a tiny random model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import tiny_checkpoint

from vccv_gpu import attention as attention_module
from vccv_gpu.attention import ROWS_PER_BLOCK, attention_figure, attention_maps, draw_attention
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


def _png(path: Path) -> tuple[tuple[int, int], dict[str, str]]:
    """A written picture's (width, height) and its text metadata; checks that it is a whole PNG."""
    from PIL import Image

    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size, dict(image.text)


def _texts(fig: object, gid: str) -> list[str]:
    return [t.get_text() for t in fig.texts if t.get_gid() == gid]  # type: ignore[attr-defined]


def _cells(fig: object, gid: str = "cell") -> list[tuple[float, float]]:
    """(width, height) px of the figure's cells (or of the frames of the strongest ones)."""
    return [(p.get_width(), p.get_height()) for p in fig.artists if p.get_gid() == gid]  # type: ignore[attr-defined]


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict, object]]:
    """The (keyword arguments, Figure) of every attention picture drawn while the test runs."""
    drawn: list[tuple[dict, object]] = []
    original = attention_module.attention_figure

    def recording(*args: object, **kwargs: object) -> object:
        fig = original(*args, **kwargs)
        drawn.append((kwargs, fig))
        return fig

    monkeypatch.setattr(attention_module, "attention_figure", recording)
    return drawn


def test_attention_pictures(tmp_path: Path, videos: list[Path], checkpoint: Path,
                            figures: list[tuple[dict, object]], capsys: pytest.CaptureFixture[str]) -> None:
    # Two clip.mp4 in different folders, one of them named in Chinese and Cyrillic: told apart by
    # their titles, and no glyph is missing from the font.
    clips = [tmp_path / "a" / "clip.mp4", tmp_path / "\u89c6\u9891 \u043a\u043b\u0438\u043f" / "clip.mp4"]
    for clip in clips:
        clip.parent.mkdir()
        shutil.copy(videos[0], clip)
    folder = tmp_path / "pictures"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main([*map(str, clips), str(videos[1]), "--checkpoint", str(checkpoint), "--attention", str(folder),
                       "--max-len", str(ROWS_PER_BLOCK + 4)])
    assert status == 0
    assert not [w for w in caught if "missing from font" in str(w.message)]
    captions = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    pngs = sorted(folder.iterdir())
    assert len(pngs) == 3 and sum(p.name.startswith("clip-") for p in pngs) == 2
    titles = set()
    for png in pngs:
        assert 1000 < png.stat().st_size < 300_000
        (width, height), text = _png(png)
        assert width > 4 * 48 and height > 100  # a column per frame (4)
        titles.add(text["Title"])
        assert text["Description"] == captions[text["Title"]]
    assert titles == {*map(str, clips), str(videos[1])}  # the whole path, whatever the font can draw

    assert len(figures) == 3
    for kwargs, fig in figures:
        video = str(kwargs["video"])
        # Every word has its row: the tiny model never ends early, so its captions are longer than
        # a block (wrapped into two).
        words = captions[video].split()
        assert len(words) > ROWS_PER_BLOCK
        assert _texts(fig, "word") == words
        assert len(_texts(fig, "gate")) == len(_cells(fig)) == 4 * len(words)
        assert len(_cells(fig, "strongest")) == len(words)  # one strongest frame per word
        # The 64x48 clips' frames are squashed to 112x112 squares: drawn 4:3 again.
        assert kwargs["aspect"] == pytest.approx(4 / 3)
        assert all(w / h == pytest.approx(4 / 3, abs=0.02) for w, h in _cells(fig))
        # The title is the video's whole path, wrapped (its lines joined give it back), each
        # character drawn or, where the font lacks it, ASCII-escaped.
        title = "".join(_texts(fig, "title"))
        assert title == video if video.isascii() else all(
            ch in title or ch.encode("ascii", "backslashreplace").decode() in title for ch in video)


def test_attention_picture_layout(tmp_path: Path) -> None:
    frames = torch.randint(0, 256, (4, 3, 112, 112), dtype=torch.uint8)
    n_long = 2 * ROWS_PER_BLOCK + 3
    attention = torch.rand(n_long, 4, 7, 7).softmax(-1)
    gate = torch.rand(n_long, 4)
    heights, widths = [], []
    for n_words in (2, 5, ROWS_PER_BLOCK, n_long):
        words = [f"w{i}" for i in range(n_words)]
        fig = attention_figure(frames, words, attention, gate, " ".join(words))
        assert _texts(fig, "word") == words  # every word, however many
        assert len(_cells(fig)) == 4 * n_words
        assert all(w == h for w, h in _cells(fig))  # square frames, no aspect given: square cells
        width, height = fig.canvas.get_width_height()  # type: ignore[attr-defined]
        widths.append(width)
        heights.append(height)
    assert heights[0] < heights[1] < heights[2]  # more words, more rows...
    assert widths[3] > 2 * widths[2] and heights[3] < heights[2] * 1.2  # ...wrapped into 3 blocks side by side
    # The display aspect ratio, either way round; the picture is what the figure says.
    portrait = draw_attention(tmp_path / "portrait.png", frames, ["a", "b"], attention, gate, "a b", aspect=0.75)
    fig = attention_figure(frames, ["a", "b"], attention, gate, "a b", aspect=0.75)
    assert all(w / h == pytest.approx(0.75, abs=0.02) for w, h in _cells(fig))
    assert _png(portrait)[0] == fig.canvas.get_width_height()  # type: ignore[attr-defined]
    # A variant without attention or gate: the frames alone, a row of them, still a picture.
    plain = attention_figure(frames, ["a", "b"], None, None, "a b")
    assert _texts(plain, "word") == ["(frames)"] and len(_cells(plain)) == 4 and not _texts(plain, "gate")
    assert "no spatial attention" in " ".join(_texts(plain, "note"))
    assert _png(draw_attention(tmp_path / "plain.png", frames, ["a", "b"], None, None, "a b"))[0][1] < heights[0]
    with pytest.raises(ValueError, match="a row per word"):
        attention_figure(frames, ["a", "b", "c"], attention[:2], gate[:2], "a b c")


def test_attention_picture_legend_and_title() -> None:
    frames = torch.randint(0, 256, (4, 3, 112, 112), dtype=torch.uint8)
    attention, gate = torch.rand(3, 4, 7, 7).softmax(-1), torch.rand(3, 4)
    gate[1, 2] = 2.0  # word 1's strongest frame: 2
    video = "/data/" + "a_rather_long_folder_name/" * 6 + "clip.mp4"
    fig = attention_figure(frames, ["a", "red", "ball"], attention, gate, "a red ball", frame_indices=[0, 5, 9, 14],
                           video=video)
    title = _texts(fig, "title")
    assert len(title) > 1 and "".join(title) == video  # wrapped, whole
    assert _texts(fig, "caption") == ["\u201ca red ball\u201d"]
    assert _texts(fig, "frame") == ["#0", "#5", "#9", "#14"]
    assert [t.get_fontweight() for t in fig.texts if t.get_gid() == "gate"][4:8] == ["normal"] * 2 + ["bold", "normal"]
    legend = "".join(_texts(fig, "legend"))
    for phrase in ("g: TGM's temporal gate", "Framed in blue, g in bold", "multiples of uniform attention",
                   "\u00d7"):
        assert phrase in legend
    assert not any(t.get_parse_math() for t in fig.texts)  # a $ in a path or a word is no mathtext


def test_attention_picture_non_latin_names_draw_without_warnings(tmp_path: Path) -> None:
    frames = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    # CJK, Cyrillic, mathtext, an emoji, an undecodable byte
    video = tmp_path / "\u89c6\u9891" / "\u043a\u043b\u0438\u043f $x$ \U0001f3a5\udcff.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = draw_attention(tmp_path / "x.png", frames, ["\u732b", "sits"], torch.rand(2, 2, 3, 3), torch.rand(2, 2),
                             "\u732b sits", video=video)
        fig = attention_figure(frames, ["\u732b", "sits"], torch.rand(2, 2, 3, 3), torch.rand(2, 2), "\u732b sits",
                               video=video)
        fig.canvas.draw()  # type: ignore[attr-defined]
    title = "".join(_texts(fig, "title"))
    assert "\\udcff" in title  # unprintable: escaped
    for ch in str(video):  # each character drawn, or escaped where the font lacks it
        assert ch in title or ch.encode("ascii", "backslashreplace").decode() in title
    assert _png(png)[1]["Title"] == str(video).encode("utf-8", "backslashreplace").decode()


def test_attention_picture_is_small(tmp_path: Path) -> None:
    """4 frames of photographs at 112 px, a 10-word caption: a 256-colour PNG well under 300 KB
    (an RGB PNG of the same picture is about 650 KB)."""
    from vccv_gpu.data.scenes import photo

    pictures = [torch.from_numpy(photo(name).copy()).permute(2, 0, 1)[None]
                for name in ("astronaut", "chelsea", "coffee", "rocket")]
    frames = torch.cat([torch.nn.functional.interpolate(p, size=(112, 112), mode="bilinear", antialias=True)
                        for p in pictures]).round().clamp(0, 255).to(torch.uint8)
    torch.manual_seed(0)
    words = "a man is riding a red bicycle down the street".split()
    png = draw_attention(tmp_path / "ten.png", frames, words, torch.rand(10, 4, 7, 7).softmax(-1), torch.rand(10, 4),
                         " ".join(words), frame_indices=[0, 6, 12, 18], video="/data/videos/clip.mp4", aspect=4 / 3)
    (width, height), _ = _png(png)
    assert png.stat().st_size < 300_000
    assert width < 700 and height < 1500


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
