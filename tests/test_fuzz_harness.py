"""The fuzz harness (`python -m tools.fuzz`): a short campaign runs and adds up, cases
are deterministic, and the harness itself notices exceptions, hangs, crashes and sanitizer
reports, naming the case. (Whether the parser survives a full campaign is CI's fuzz phase.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from collections import Counter
from pathlib import Path

import pytest

from tools import fuzz

ROOT = Path(__file__).resolve().parents[1]  # `python -m tools.fuzz` runs from here

OUTCOMES = ("parsed", "corrupt", "unsupported")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-clips")
    fuzz.make_clips(root)
    return root


@pytest.fixture(scope="module")
def corpus(clips):
    return fuzz.load_clips([clips / name for name, _ in fuzz.CLIPS])


def test_seed_clips_parse(corpus):
    kinds = Counter((c.annexb, c.params.get("entropy_coding_mode_flag")) for c in corpus)
    assert set(kinds) == {(True, 0), (True, 1), (False, 0), (False, 1)}  # raw and containers, CAVLC and CABAC
    for clip in corpus:
        outcome, good, bad = fuzz.parse_all(clip.data)
        assert (outcome, bad) == ("parsed", 0) and good >= 6, clip.name
        assert {fuzz.SPS, fuzz.PPS, fuzz.IDR} <= set(clip.types), clip.name


def test_odd_mp4_cases_go_through_a_file(corpus, monkeypatch):
    """So that the sanitizer build also fuzzes slice data read back from files."""
    from pathlib import Path

    from tools.fuzz import harness
    from vccv_gpu import codec

    mp4 = next(c for c in range(1, 400, 2) if fuzz.make_case(corpus, 0, c).data[4:8] == b"ftyp")
    opened = []
    real_open = codec.open
    monkeypatch.setattr(codec, "open", lambda source: opened.append(source) or real_open(source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mutated cases may be truncated
        for case in (mp4, mp4 + 1):
            harness.parse_all(fuzz.make_case(corpus, 0, case).data, case)
    assert isinstance(opened[0], Path) and opened[0].read_bytes() == fuzz.make_case(corpus, 0, mp4).data
    assert isinstance(opened[1], bytes)


def test_cases_are_deterministic_and_use_every_mutation(clips, corpus):
    again = fuzz.load_clips([clips / name for name, _ in fuzz.CLIPS])
    used: Counter[str] = Counter()
    changed = 0
    for n in range(3000):
        case = fuzz.make_case(corpus, 5, n)
        assert case.data == fuzz.make_case(again, 5, n).data
        assert len(case.mutations) == len(case.description) >= 1
        used.update(case.mutations)
        changed += case.data != next(c.data for c in corpus if c.name == case.clip)
    assert set(used) == set(fuzz.MUTATIONS), set(fuzz.MUTATIONS) - set(used)
    assert changed > 2900
    assert fuzz.make_case(corpus, 6, 0).data != fuzz.make_case(corpus, 5, 0).data


def test_field_rewrites_keep_the_rest_of_the_unit(corpus):
    """Re-encoding every recorded header field with its own value gives the same bits back."""
    for clip in corpus:
        for i, kind in enumerate(clip.types):
            nal = clip.nal(i)
            if kind == fuzz.SPS:
                fields = fuzz.sps_fields(nal)
            elif kind == fuzz.PPS:
                fields = fuzz.pps_fields(nal)
            elif kind in (fuzz.SLICE, fuzz.IDR):
                fields = fuzz.slice_fields(nal, clip.params)
            else:
                continue
            names = [f[0] for f in fields.fields]
            assert names, (clip.name, i)
            bits = format(fields.value, f"0{fields.n}b")
            for _, kind_, start, length, value in fields.fields:
                assert fuzz._encode(kind_, length, value) == bits[start:start + length]
    sps = fuzz.sps_fields(corpus[0].nal(corpus[0].types.index(fuzz.SPS)))
    values = {name: value for name, _, _, _, value in sps.fields}
    assert (values["pic_width_in_mbs_minus1"] + 1) * 16 == 64


def test_short_campaign_adds_up(clips, tmp_path):
    report = fuzz.run(cases=300, seed=11, jobs=2, clips=clips, progress=False)
    assert report["cases"] == 300
    assert sum(report[k] for k in OUTCOMES) + report["failed"] == 300
    # The mutations reach the parser's checks and also leave data that parses.
    assert report["parsed"] > 20 and report["corrupt"] > 100, report
    assert report["frames_parsed"] > 300
    assert len(report["failures"]) == report["failed"]
    for failure in report["failures"]:  # whatever the parser does, a failure says how to rerun it
        assert {"case", "kind", "signature", "reproduce", "mutations"} <= set(failure)
        assert f"--case {failure['case']}" in failure["reproduce"]
    assert sum(sum(c.values()) for c in report["mutations"].values()) >= 300


FAKE_TARGET = """
import os, signal, sys, time

def target(data, case):
    if case == 3 or data == b"fail":
        raise ValueError("boom")
    if case == 4:  # the other worker runs out of cases and waits idle while this one hangs on 5
        time.sleep(3)
    if case == 5:
        time.sleep(60)
    if case == 7:
        os._exit(1)
    if case == 9:
        os.kill(os.getpid(), signal.SIGSEGV)
    if case == 11:
        sys.stderr.write("parse.cpp:1:2: runtime error: signed integer overflow\\n")
    if case == 12:
        print("stdout chatter must not confuse the harness")
    return "corrupt" if case % 2 else "parsed"
"""


def test_harness_detects_exceptions_hangs_crashes_and_sanitizer_reports(clips, tmp_path):
    target = tmp_path / "fake_target.py"
    target.write_text(textwrap.dedent(FAKE_TARGET))
    saved = tmp_path / "saved"
    report = fuzz.run(cases=16, seed=0, jobs=2, clips=clips, timeout=5.0, target=f"{target}:target",
                      save_failures=saved, progress=False)
    failures = {f["case"]: f for f in report["failures"]}
    assert sorted(failures) == [3, 5, 7, 9, 11], report["failures"]
    assert failures[3]["kind"] == "exception" and "ValueError: boom" in failures[3]["detail"]
    assert failures[5]["kind"] == "hang" and failures[5]["reproduced"]
    assert failures[7]["kind"] == "crash" and "exited with status 1" in failures[7]["detail"]
    assert failures[9]["kind"] == "crash" and "SIGSEGV" in failures[9]["detail"]
    assert failures[7]["reproduced"] and failures[9]["reproduced"]
    assert failures[11]["kind"] == "sanitizer" and "signed integer overflow" in failures[11]["signature"]
    # The cases queued behind a dead or hung worker ran in its replacement.
    assert report["cases"] == 16 and report["parsed"] + report["corrupt"] == 11
    corpus = fuzz.load_clips([clips / n for n, _ in fuzz.CLIPS])
    for number, failure in failures.items():  # the inputs are saved, with a note on each
        case = fuzz.make_case(corpus, 0, number)
        path = saved / f"seed0-case{number}-{failure['kind']}{case.suffix}"
        assert failure["input"] == str(path) and path.read_bytes() == case.data
        assert json.loads(path.with_suffix(".txt").read_text())["case"] == number
    # Saved inputs replay through the same checks (the target sees the file's index as the case).
    (tmp_path / "fail.h264").write_bytes(b"fail")
    replay = fuzz.run(replay=[tmp_path / "fail.h264", failures[9]["input"]], jobs=1, timeout=5.0,
                      target=f"{target}:target", progress=False)
    assert replay["cases"] == 2 and replay["parsed"] + replay["corrupt"] == 1
    assert [(f["case"], f["kind"], f["input"]) for f in replay["failures"]] == [
        (0, "exception", str((tmp_path / "fail.h264").resolve()))]


def test_command_line(clips, tmp_path):
    result = subprocess.run([sys.executable, "-m", "tools.fuzz", "--help"], capture_output=True,
                            text=True, check=True, cwd=ROOT)
    for option in ("--cases", "--seed", "--hours", "--jobs", "--report", "--save-failures", "--clips"):
        assert option in result.stdout
    target = tmp_path / "fake_target.py"
    target.write_text(textwrap.dedent(FAKE_TARGET))
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "tools.fuzz", "--cases", "5", "--clips", str(clips),
                             "--jobs", "1", "--report", str(report), "--target", f"{target}:target"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    summary = json.loads(report.read_text())
    assert summary["cases"] == 5 and [f["case"] for f in summary["failures"]] == [3]
    assert "FAILURE x1: exception: ValueError: boom" in result.stdout
    assert "--seed 0 --case 3" in result.stdout
