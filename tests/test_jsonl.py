"""The JSON-lines store every resumable output uses (caption --out, the feature store's logs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vccv_gpu import jsonl
from vccv_gpu.runtime import Ranks


def test_a_torn_last_line_is_ignored_then_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3')  # killed mid-append
    assert jsonl.read(path) == [{"a": 1}, {"a": 2}]
    assert path.read_text().endswith('{"a": 3')  # reading alone changes nothing
    with jsonl.Appender(path) as out:
        out.write([{"a": 4}])
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 4}\n'
    assert jsonl.read(path) == [{"a": 1}, {"a": 2}, {"a": 4}]


def test_a_complete_record_without_its_newline_is_torn_too(tmp_path: Path) -> None:
    # Appending after it would glue two records onto one line.
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}')
    assert jsonl.read(path) == [{"a": 1}]
    assert jsonl.repair(path) and path.read_text() == '{"a": 1}\n'
    assert not jsonl.repair(path)


def test_a_damaged_line_before_the_last_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(jsonl.JsonlError, match=r"log\.jsonl: line 2"):
        jsonl.read(path)
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(jsonl.JsonlError, match="line 2"):
        jsonl.read(path)  # not an object
    with pytest.raises(jsonl.JsonlError, match="line 1"):
        jsonl.read(path, lambda r: "b" in r)


def test_missing_files_and_rank_files(tmp_path: Path) -> None:
    assert jsonl.read(tmp_path / "absent.jsonl") == []
    assert not jsonl.repair(tmp_path / "absent.jsonl")
    for name in ("out.jsonl.rank10", "out.jsonl.rank2", "out.jsonl.rankx", "other.rank1"):
        (tmp_path / name).write_text("")
    pattern = re.compile(r"out\.jsonl\.rank(\d+)")
    assert [p.name for p in jsonl.rank_files(tmp_path, pattern)] == ["out.jsonl.rank2", "out.jsonl.rank10"]
    assert jsonl.rank_files(tmp_path / "absent", pattern) == []


def test_non_utf8_paths_still_encode(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    name = b"caf\xe9.mp4".decode("utf-8", "surrogateescape")  # a Latin-1 file name on a UTF-8 system
    with jsonl.Appender(path) as out:
        out.write([{"path": name}])
    assert jsonl.read(path) == [{"path": name}]


def test_one_rank_outside_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ranks, device = Ranks.join("cpu")
    assert (ranks.rank, ranks.size, ranks.main, ranks.distributed, device.type) == (0, 1, True, False, "cpu")
    ranks.barrier()
    assert ranks.sum([3, 4]) == [3, 4]
    ranks.close()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        Ranks.join("cpu")
