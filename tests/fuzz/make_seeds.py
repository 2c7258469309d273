"""Seed corpus of the libFuzzer target (tests/fuzz/h264_fuzzer.cpp), in its input format.

    python tests/fuzz/make_seeds.py --out build/libfuzzer/seeds [--conformance DIR] [--clips DIR]

Seeds: every H.264 stream of the conformance set (../shared/conformance beside the clone) and a
few generated libx264 clips (the Python fuzz campaign's seed clips, tools.fuzz.corpus,
plus some of this script's own: tiny frames, CAVLC with 8x8 transforms, crf 1, four slices).
Each stream becomes two seeds: Annex B (mode byte 0) and AVCC (mode 1: an avcC record, then one
packet per access unit). MP4 files keep their own extradata and packets (demuxed with PyAV) and
are file-backed (mode 3), as codec.open reads MP4 files; raw streams are converted to AVCC here.
Seeds are cut to --max-units access units and --max-bytes bytes (AVCC seeds at a packet boundary
where possible) so that the executions per second stay useful. Files that are not H.264 (other
codecs in the MP4 set) are skipped.

Also importable: `annexb_nals`, `avcc_seed`, `annexb_seed`, `decode_input` (the format's reader,
used by tests/test_libfuzzer_regressions.py).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tools/ (clips) is outside the package
MODE_AVCC, MODE_FILE = 1, 2
# Raw H.264 and container files of the conformance set (not its README and MANIFEST).
SUFFIXES = frozenset({".264", ".h264", ".jsv", ".26l", ".jvt", ".avc", ".h26l", ".mp4", ".m4v", ".mov", ".mkv",
                      ".3gp", ".ts"})

# Extra clips beside the Python campaign's (name -> make_clip settings): small and short.
EXTRA_CLIPS: tuple[tuple[str, dict], ...] = (
    ("tiny-16x16-cabac-b2.h264", dict(profile="high", entropy="cabac", bframes=2, frames=6, gop=6, size=(16, 16))),
    ("tiny-32x16-cavlc.h264", dict(profile="baseline", entropy="cavlc", frames=4, size=(32, 16))),
    ("high-cavlc-8x8.h264", dict(profile="high", entropy="cavlc", transform_8x8=True, bframes=1, frames=6,
                                 size=(48, 32))),
    ("high-cabac-crf1.h264", dict(profile="high", entropy="cabac", crf=1, frames=3, size=(32, 32))),
    ("high-cavlc-crf1.h264", dict(profile="high", entropy="cavlc", crf=1, frames=3, size=(32, 32))),
    ("main-cabac-4slices-refs4.mp4", dict(profile="main", entropy="cabac", slices=4, refs=4, bframes=3, frames=10,
                                          size=(64, 64))),
    ("high-cabac-odd-size.mp4", dict(profile="high", entropy="cabac", bframes=2, frames=6, size=(50, 38))),
)


# ------------------------------------------------------------------------------------------------
# The input format (see the header comment of h264_fuzzer.cpp)
# ------------------------------------------------------------------------------------------------


def annexb_seed(stream: bytes, file_backed: bool = False) -> bytes:
    return bytes([MODE_FILE if file_backed else 0]) + stream


def avcc_seed(extradata: bytes, packets: list[bytes], file_backed: bool = False,
              max_bytes: int | None = None) -> bytes:
    out = bytearray([MODE_AVCC | (MODE_FILE if file_backed else 0)])
    out += len(extradata).to_bytes(2, "big") + extradata
    for k, packet in enumerate(packets):
        if max_bytes is not None and k > 0 and len(out) + 4 + len(packet) > max_bytes:
            break
        out += len(packet).to_bytes(4, "big") + packet
    return bytes(out[:max_bytes] if max_bytes else out)


def decode_input(data: bytes) -> tuple[int, bytes | None, list[bytes]]:
    """(mode, extradata or None, packets) as the fuzz target reads them: Annex B inputs are one
    packet; lengths are clamped to what is left; an empty extradata is not added."""
    if not data:
        return 0, None, []
    mode = data[0]
    if not mode & MODE_AVCC:
        return mode, None, [data[1:]]
    pos = 1
    if len(data) - pos < 2:
        return mode, None, []
    size = min(int.from_bytes(data[pos:pos + 2], "big"), len(data) - pos - 2)
    pos += 2
    extradata = data[pos:pos + size] or None
    pos += size
    packets = []
    while len(data) - pos >= 4:
        length = min(int.from_bytes(data[pos:pos + 4], "big"), len(data) - pos - 4)
        pos += 4
        packets.append(data[pos:pos + length])
        pos += length
    return mode, extradata, packets


# ------------------------------------------------------------------------------------------------
# Conversions between Annex B and AVCC
# ------------------------------------------------------------------------------------------------


def annexb_units(data: bytes) -> list[tuple[int, bytes]]:
    """(offset of its start code, NAL unit) of each NAL unit of an Annex B byte stream
    (trailing zero bytes dropped)."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    units = []
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        nal = data[s:end].rstrip(b"\x00")
        if nal:
            units.append((s - 4 if s >= 4 and data[s - 4] == 0 else s - 3, nal))
    return units


def annexb_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (trailing zero bytes dropped)."""
    return [nal for _, nal in annexb_units(data)]


def _avcc_record(sps: list[bytes], pps: list[bytes]) -> bytes:
    head = sps[0][1:4] if sps and len(sps[0]) >= 4 else b"\x42\x00\x1e"
    out = bytearray([1, *head, 0xFF, 0xE0 | min(len(sps), 31)])
    for nal in sps[:31]:
        out += len(nal).to_bytes(2, "big") + nal
    out.append(min(len(pps), 255))
    for nal in pps[:255]:
        out += len(nal).to_bytes(2, "big") + nal
    return bytes(out)


def access_units(data: bytes) -> tuple[list[bytes], list[bytes], list[tuple[int, list[bytes]]]]:
    """SPS and PPS units before the first slice, and the access units after them: (offset of
    the first start code, NAL units) each. An access unit starts at a non-VCL unit or a slice
    with first_mb_in_slice = 0 that follows a slice; later parameter sets stay in band."""
    sps, pps, units = [], [], []
    seen_slice = after_vcl = False
    for offset, nal in annexb_units(data):
        kind = nal[0] & 0x1F
        if not seen_slice and kind in (7, 8):
            (sps if kind == 7 else pps).append(nal)
            continue
        vcl = 1 <= kind <= 5
        first_mb_zero = vcl and len(nal) > 1 and nal[1] & 0x80
        if not units or (after_vcl and (not vcl or first_mb_zero)):
            units.append((offset, []))
        units[-1][1].append(nal)
        after_vcl = vcl
        seen_slice = seen_slice or vcl
    return sps, pps, units


def annexb_to_avcc(data: bytes) -> tuple[bytes, list[bytes]]:
    """An avcC record (the SPS/PPS units before the first slice) and one packet of 4-byte
    length-prefixed NAL units per access unit."""
    sps, pps, units = access_units(data)
    packets = [b"".join(len(nal).to_bytes(4, "big") + nal for nal in nals) for _, nals in units]
    return _avcc_record(sps, pps), packets


def avcc_to_annexb(extradata: bytes, packets: list[bytes]) -> bytes:
    """Annex B: the avcC record's parameter sets, then every packet's NAL units."""
    out = bytearray()
    length_size = 4
    if extradata[:1] == b"\x01" and len(extradata) >= 7:
        length_size = (extradata[4] & 3) + 1
        pos = 5
        for mask in (0x1F, 0xFF):
            if pos >= len(extradata):
                break
            count = extradata[pos] & mask
            pos += 1
            for _ in range(count):
                size = int.from_bytes(extradata[pos:pos + 2], "big")
                out += b"\x00\x00\x00\x01" + extradata[pos + 2:pos + 2 + size]
                pos += 2 + size
    elif extradata:
        out += extradata
    for packet in packets:
        pos = 0
        while pos + length_size <= len(packet):
            size = int.from_bytes(packet[pos:pos + length_size], "big")
            out += b"\x00\x00\x00\x01" + packet[pos + length_size:pos + length_size + size]
            pos += length_size + size
    return bytes(out)


def demux(path: Path) -> tuple[bytes, list[bytes]] | None:
    """(extradata, packets) of a container's H.264 video stream; None if it has none."""
    import av

    try:
        with av.open(str(path)) as container:
            videos = container.streams.video
            if not videos or videos[0].codec_context is None or videos[0].codec_context.name != "h264":
                return None
            stream = videos[0]
            extradata = bytes(stream.codec_context.extradata or b"")
            packets = []
            try:
                for packet in container.demux(stream):
                    if packet.size:
                        packets.append(bytes(packet))
            except av.error.FFmpegError:
                pass  # a damaged file: its packets so far
            return extradata, packets
    except (av.error.FFmpegError, UnicodeDecodeError):
        return None


def is_annexb(head: bytes) -> bool:
    stripped = head.lstrip(b"\0")
    return len(head) - len(stripped) >= 2 and stripped[:1] == b"\x01"


# ------------------------------------------------------------------------------------------------
# Seeds
# ------------------------------------------------------------------------------------------------


def seeds_of(path: Path, max_bytes: int, max_units: int) -> Iterator[tuple[str, bytes]]:
    """(label, seed) pairs of one video file: Annex B and AVCC, of at most `max_units` access
    units (packets) and `max_bytes` bytes."""
    data = path.read_bytes()
    if is_annexb(data[:64]):
        units = access_units(data)[2]
        cut = units[max_units][0] if len(units) > max_units else len(data)
        yield "annexb", annexb_seed(data[:min(cut, max_bytes - 1)])
        extradata, packets = annexb_to_avcc(data)
        if packets:
            yield "avcc", avcc_seed(extradata, packets[:max_units], max_bytes=max_bytes)
        return
    found = demux(path)
    if found is None or not found[1]:
        return
    extradata, packets = found
    packets = packets[:max_units]
    mp4 = data[4:8] == b"ftyp"
    yield "avcc", avcc_seed(extradata, packets, file_backed=mp4, max_bytes=max_bytes)
    yield "annexb", annexb_seed(avcc_to_annexb(extradata, packets)[:max_bytes - 1])


def make_clips(directory: Path) -> list[Path]:
    """The Python campaign's seed clips and EXTRA_CLIPS, made in `directory` (reused if there)."""
    import importlib.util

    from tools.clips import make_clip

    # corpus.py by path: importing the vccv_gpu.codec package would load the extension, which in
    # CI is the sanitizer build (it needs the ASan runtime preloaded). corpus.py imports no codec.
    spec = importlib.util.spec_from_file_location("_campaign_corpus", ROOT / "tools/fuzz/corpus.py")
    assert spec is not None and spec.loader is not None
    corpus = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = corpus  # for its dataclasses
    spec.loader.exec_module(corpus)
    paths = corpus.make_clips(directory)
    for name, settings in EXTRA_CLIPS:
        path = directory / name
        if not path.is_file() or path.stat().st_size == 0:
            make_clip(directory / f".tmp-{name}", **settings).replace(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build/libfuzzer/seeds")
    parser.add_argument("--conformance", type=Path, default=ROOT.parent / "shared/conformance",
                        help="the conformance streams (default: ../shared/conformance beside the clone)")
    parser.add_argument("--clips", type=Path, default=ROOT / "build/fuzz/clips",
                        help="where the generated clips are made, or reused if already there")
    parser.add_argument("--no-clips", action="store_true", help="conformance streams only")
    parser.add_argument("--max-bytes", type=int, default=16384, help="cut seeds to this size (default 16384)")
    parser.add_argument("--max-units", type=int, default=16,
                        help="cut seeds after this many access units (default 16)")
    args = parser.parse_args(argv)
    if not args.conformance.is_dir():
        print(f"make_seeds: no conformance streams at {args.conformance}", file=sys.stderr)
        return 1

    videos = sorted(p for p in args.conformance.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not args.no_clips:
        args.clips.mkdir(parents=True, exist_ok=True)
        videos += make_clips(args.clips)
    args.out.mkdir(parents=True, exist_ok=True)
    count = total = 0
    for path in videos:
        for label, seed in seeds_of(path, args.max_bytes, args.max_units):
            digest = hashlib.sha1(seed).hexdigest()[:10]
            (args.out / f"{path.stem}.{label}.{digest}").write_bytes(seed)
            count += 1
            total += len(seed)
    print(f"make_seeds: {count} seeds ({total / 1e6:.1f} MB) from {len(videos)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
