"""The libFuzzer target's regression inputs (tests/fuzz/regressions/), replayed through the Python
binding: each input is fed to `_h264.Stream` as tests/fuzz/h264_fuzzer.cpp feeds the C++ Stream
(its input format: make_seeds.decode_input), then every picture is parsed and read; Annex B inputs
also go through `codec.open(bytes)` and the fuzz harness's checks. Only CorruptStream and
UnsupportedStream may be raised. CI replays the same files through the sanitizer-built target
(tests/fuzz/ci.sh)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tools.fuzz import parse_all
from vccv_gpu import _h264

FUZZ_DIR = Path(__file__).resolve().parent / "fuzz"
REGRESSIONS = sorted(p for p in (FUZZ_DIR / "regressions").glob("*") if p.is_file() and not p.name.startswith("."))


def _load_make_seeds():
    spec = importlib.util.spec_from_file_location("make_seeds", FUZZ_DIR / "make_seeds.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_seeds", module)
    spec.loader.exec_module(module)
    return module


make_seeds = _load_make_seeds()


def replay_native(data: bytes, source_file: Path) -> int:
    """h264_fuzzer.cpp's run() through the binding; returns the number of pictures read."""
    mode, extradata, packets = make_seeds.decode_input(data)
    stream = _h264.Stream()
    try:
        if not data:
            stream.finish()
        file_backed = bool(mode & make_seeds.MODE_FILE)
        if file_backed:
            source_file.write_bytes(data)
            stream.set_source_file(str(source_file))
        if extradata:
            stream.add_extradata(extradata)
        # The packets' offsets in the input (the file): after the mode byte, the extradata
        # field and each packet's length field.
        pos = 1 if not mode & make_seeds.MODE_AVCC else 3 + len(extradata or b"")
        for k, packet in enumerate(packets):
            pos += 0 if not mode & make_seeds.MODE_AVCC else 4
            pts = k if mode & make_seeds.MODE_AVCC else None
            stream.add_packet(packet, pts, k + 1 == len(packets), pos if file_backed else -1)
            pos += len(packet)
        stream.finish()
        stream.sequence_info()
    except (_h264.CorruptStream, _h264.UnsupportedStream):
        return 0
    read = 0
    for shown, decode_index, *_ in stream.pictures():
        if shown < 0:
            continue  # not listed (a reference only), as codec.Stream.frames leaves it out
        stream.slice_headers(decode_index)
        stream.scaling_matrices(decode_index)
        try:
            picture = stream.parse_picture(decode_index)
        except (_h264.CorruptStream, _h264.UnsupportedStream):
            continue
        picture.macroblocks()
        picture.residual()
        picture.coefficients()
        picture.total_coeff()
        read += 1
    return read


def test_input_format_round_trip():
    avcc = make_seeds.avcc_seed(b"\x01\x64\x00\x1f\xff", [b"\x00\x00\x00\x01\x65", b"", b"\x00\x00\x00\x01\x41"],
                                file_backed=True)
    assert make_seeds.decode_input(avcc) == (3, b"\x01\x64\x00\x1f\xff",
                                             [b"\x00\x00\x00\x01\x65", b"", b"\x00\x00\x00\x01\x41"])
    assert make_seeds.decode_input(make_seeds.annexb_seed(b"\x00\x00\x01\x67")) == (0, None, [b"\x00\x00\x01\x67"])
    # Lengths past the end are clamped; fewer than 4 bytes after a packet are ignored.
    assert make_seeds.decode_input(b"\x01\xff\xff\x01\x02") == (1, b"\x01\x02", [])
    assert make_seeds.decode_input(b"\x05\x00\x00\x00\x00\x00\x09ab") == (5, None, [b"ab"])
    assert make_seeds.decode_input(b"\x05\x00\x00\x00\x00\x00\x02ab\x00\x00") == (5, None, [b"ab"])


@pytest.mark.skipif(not REGRESSIONS, reason="no regression inputs")
@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_regression_input(path, tmp_path):
    data = path.read_bytes()
    pictures = replay_native(data, tmp_path / "input")
    if path.name.startswith("smoke-"):  # valid streams, one per input mode: every picture reads
        assert pictures > 0
    mode, _, packets = make_seeds.decode_input(data)
    if not mode & make_seeds.MODE_AVCC and packets and packets[0]:
        outcome, _, _ = parse_all(packets[0])
        assert outcome in ("parsed", "corrupt", "unsupported")
