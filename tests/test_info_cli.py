"""`python -m vccv_gpu.codec info`: table, JSON, bad files reported while the rest are listed."""

from __future__ import annotations

import json
import subprocess
import sys

from vccv_gpu.codec.info import main


def test_table_and_json(clip_factory, tmp_path, capsys):
    good = clip_factory(".mp4", profile="high", bframes=3, gop=12, frames=30)
    raw = clip_factory(".h264", profile="baseline", entropy="cavlc")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\0" * 100)
    assert main([str(good), str(bad), str(raw)]) == 1
    out, err = capsys.readouterr()
    assert "broken.mp4" in err and "broken.mp4" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["file", "size", "profile", "level", "entropy", "frames", "keyint", "gop"]
    assert lines[1].split()[1:7] == ["160x96", "high", "1.1", "cabac", "30", "12"]
    assert lines[1].split()[7].startswith("I") and len(lines[1].split()[7]) == 12
    assert lines[2].split()[1:4] == ["160x96", "constrained", "baseline"]

    assert main(["--json", str(good)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["gop_lengths"] == [12, 12, 6] and row["types"][0] == "I" and len(row["types"]) == 30
    assert row["first_gop"] == row["types"][:12] and not row["truncated"]


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec", "info", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--json" in result.stdout
    # Without a command: the whole help (every command, what it does) on stderr, status 2.
    result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: python -m vccv_gpu.codec [-h] COMMAND ...")
    for text in ("info: print the stream structure", "motion: write", "reencode: re-encode videos"):
        assert text in " ".join(result.stderr.split()), result.stderr
    result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec", "nosuchcommand"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice: 'nosuchcommand'" in result.stderr


def test_truncated_file_is_one_warning_line(clip_factory, tmp_path):
    """`info` and `motion` on a cut file: one 'warning: PATH: truncated ...' line on stderr, not
    Python's 'file:line: UserWarning: ...' and its source line; --verify makes it one error line."""
    data = clip_factory(".h264", profile="main", entropy="cavlc", frames=24, size=(96, 64)).read_bytes()
    cut = tmp_path / "cut.h264"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    expected = f"warning: {cut}: truncated (the last picture is cut short); "

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vccv_gpu.codec", *args], capture_output=True, text=True,
                              timeout=120, check=False)

    info = run("info", str(cut))
    assert info.returncode == 0 and "(truncated)" in info.stdout
    motion = run("motion", str(cut), "--out", str(tmp_path / "motion"))
    assert motion.returncode == 0
    for result in (info, motion):
        lines = [line for line in result.stderr.splitlines() if ": truncated" in line]
        assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
        assert lines[0].endswith(" complete frames listed"), result.stderr
        assert "UserWarning" not in result.stderr and "Warning:" not in result.stderr
        assert "open_stream" not in result.stderr and ".py:" not in result.stderr  # no source line
    warning, = info.stderr.splitlines()  # info says nothing else on stderr
    complete = warning.removeprefix(expected).removesuffix(" listed")

    verify = run("info", "--verify", str(cut))
    assert verify.returncode == 1
    assert verify.stderr.splitlines() == [f"error: {cut}: truncated (the last picture is cut short); {complete}"]


def test_directory_verify_reports_bad_files_by_name(clip_factory, tmp_path, capsys):
    """`info DIR --verify`: every video under DIR is listed or reported; slice data damage that
    only the macroblock layer sees is found with --verify and missed without it."""
    import shutil

    import numpy as np

    from tools.clips import make_foreign_clip
    from vccv_gpu import codec

    root = tmp_path / "videos"
    (root / "nested" / "deeper").mkdir(parents=True)
    good = {
        "a.mp4": clip_factory(".mp4", profile="high", bframes=3, gop=12, frames=30),
        "nested/b.h264": clip_factory(".h264", profile="baseline", entropy="cavlc"),
        "nested/deeper/c.mkv": clip_factory(".mkv", profile="main", entropy="cabac", bframes=2, slices=2),
    }
    for name, src in good.items():
        shutil.copy(src, root / name)
    (root / "notes.txt").write_text("not a video: ignored")
    raw = clip_factory(".h264", profile="main", entropy="cavlc", frames=24, size=(96, 64))
    data = raw.read_bytes()

    # Cut in the middle of a slice: the cut picture is dropped and the file marked truncated.
    (root / "cut.h264").write_bytes(data[:int(len(data) * 0.6)])
    # Emulation-prevented zero runs in the slice data of a picture in the middle: the headers
    # still parse, the CAVLC codes there do not.
    flipped = bytearray(data)
    mid = int(len(data) * 0.6)
    flipped[mid:mid + 6] = b"\0\0\3\0\0\3"
    (root / "nested" / "flipped.h264").write_bytes(bytes(flipped))
    with codec.open(bytes(flipped)) as s:  # the premise: only a full parse finds the damage
        assert not s.truncated
    (root / "noise.mp4").write_bytes(np.random.default_rng(3).bytes(5000))
    make_foreign_clip(root / "nested" / "other.webm", "libvpx-vp9")
    bad = ["cut.h264", "nested/flipped.h264", "noise.mp4", "nested/other.webm"]

    assert main([str(root), "--verify"]) == 1
    out, err = capsys.readouterr()
    errors = {line.split(": ")[1]: line for line in err.splitlines() if line.startswith("error: ")}
    assert sorted(errors) == sorted(str(root / name) for name in bad), err
    assert "truncated" in errors[str(root / "cut.h264")]
    assert "picture" in errors[str(root / "nested" / "flipped.h264")]  # names the broken picture
    assert "not H.264" in errors[str(root / "nested" / "other.webm")]
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == [str(root / name) for name in ("a.mp4", "nested/b.h264", "nested/deeper/c.mkv")], out

    # Without --verify the damaged slice data goes unnoticed and the cut file is listed as truncated.
    assert main([str(root)]) == 1
    out, err = capsys.readouterr()
    assert "flipped.h264" in out and "flipped.h264" not in err
    assert any("cut.h264" in line and "(truncated)" in line for line in out.splitlines())
    assert "noise.mp4" in err and "other.webm" in err

    # Files and directories mix; JSON rows say they were verified.
    assert main(["--json", "--verify", str(root / "nested" / "deeper"), str(root / "a.mp4")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [str(root / "nested/deeper/c.mkv"), str(root / "a.mp4")]
    assert all(r["verified"] for r in rows)


def test_empty_directory_is_an_error(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("no videos here")
    assert main([str(tmp_path)]) == 1
    assert f"error: {tmp_path}: no video files" in capsys.readouterr().err


def test_unreadable_subfolder_is_reported(clip_factory, tmp_path, capsys, monkeypatch):
    import os
    import shutil
    from pathlib import Path

    shutil.copy(clip_factory(size=(64, 48), frames=6), tmp_path / "a.mp4")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):  # root ignores mode 000: the denial is simulated where os.walk lists
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert main([str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "a.mp4" in captured.out
    assert captured.err == f"error: permission denied: {locked}\n"
