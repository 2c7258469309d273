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
    result = subprocess.run([sys.executable, "-m", "vccv_gpu.codec"], capture_output=True, text=True)
    assert result.returncode == 2 and "info" in result.stderr
