"""How much of libavcodec's own decode is its macroblock parsing: the speed a parser exactly as
fast as libavcodec's parser would reach against libavcodec's full decode.

The parse goals of benchmarks/parser.py are ratios to (c), libavcodec's single-thread decode. That
decode parses every macroblock (entropy decoding, neighbour caches, vector prediction, direct
prediction, coefficients) and then reconstructs it (motion compensation, inverse transforms, the
deblocking filter). So c_time / libavcodec's parse time is what libavcodec's own parser reaches.

PyAV's libavcodec has no symbols, so its functions are found from what the library itself holds:
  * the function ranges of its unwind tables (.eh_frame; FFmpeg's hand-written assembly, the
    reconstruction's DSP, has none and counts as "no unwind entry");
  * the entropy decoders' read-only tables, found by their contents: CABAC's renormalisation
    shifts (one byte per codIRange, 9.3.3.2.2) and Exp-Golomb code lengths (one byte per 9-bit
    prefix, 9.1); the functions that address them are the macroblock parsers (the slice header
    parser too, which holds no measurable time);
  * the parse: those functions holding >= 1 % of the decode's samples, and everything they call
    or jump into (residual blocks, direct prediction, intra mode checks, cold parts), from the
    disassembly's direct calls and jumps.
The decode runs under `perf record` (cpu-clock samples) on one core; each sample's address is
mapped into the library's functions. It needs Linux perf, readelf and objdump.

Columns: libavcodec's full decode (c) and our parse for vectors + coefficients (vc), both 1 thread,
timed side by side on one core in interleaved rounds (the best kept); parse: libavcodec's parse
share of (c)'s samples; lavc parse = c / parse share, libavcodec's parser at (c)'s speed.

With --instructions, both decodes also run under valgrind's callgrind, which counts every
instruction and (in its simple branch model) every mispredicted branch by address: per frame,
those of libavcodec's parse (the same functions, chosen by their instructions instead of samples)
against those of our extension for vectors + coefficients. Unlike times, the counts repeat exactly.

    python benchmarks/libavcodec_parse_share.py [--repeat 3] [--instructions] [VIDEO ...]

With no VIDEO: the generated clips of benchmarks/parser.py and its 720p/1080p conformance streams.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from vccv_gpu import _h264, codec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parser import CONFORMANCE_STREAMS as PARSER_STREAMS  # noqa: E402  (benchmarks/parser.py)
from parser import clip_arguments, clips_to_measure, libavcodec, ours, timed  # noqa: E402

# parser.py's 720p/1080p conformance streams, CABAC and CAVLC.
CONFORMANCE_STREAMS = [n for n in PARSER_STREAMS if "temporal_direct" in n]

# The number of bits to shift codIRange (9..510, or 0) left by to bring it to 256 or more, for every
# 9-bit value: RenormD of 9.3.3.2.2 as a table.
RENORM_SHIFTS = bytes(9 - v.bit_length() if v else 9 for v in range(512))[:256]
# The length of the ue(v) code (9.1) whose first nine bits are the index, 2 * leadingZeroBits + 1,
# for codes longer than 9 bits the index 0 (leadingZeroBits >= 9) given as 19.
EXP_GOLOMB_LENGTHS = bytes(2 * (9 - v.bit_length()) + 1 if v else 19 for v in range(512))
ENTROPY_TABLES = {"CABAC": RENORM_SHIFTS, "Exp-Golomb": EXP_GOLOMB_LENGTHS}


def loaded_libavcodec() -> Path:
    """The libavcodec PyAV loads (from this process's memory map)."""
    import av

    av.CodecContext.create("h264", "r")
    for line in Path("/proc/self/maps").read_text().splitlines():
        if "libavcodec" in line:
            return Path(line.split(maxsplit=5)[5])
    raise RuntimeError("PyAV loaded no libavcodec")


class Library:
    """A shared library's functions (from its unwind table), the entropy tables each addresses,
    and its direct calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        frames = subprocess.run(["readelf", "--debug-dump=frames", str(path)], capture_output=True, text=True,
                                check=True).stdout
        self.functions = sorted({tuple(int(a, 16) for a in m.groups())
                                 for m in re.finditer(r"FDE cie=\w+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", frames)})
        self.starts = [start for start, _ in self.functions]
        # LOAD segments: (file offset, virtual address, size in the file)
        self.segments = [(int(m[1], 16), int(m[2], 16), int(m[3], 16)) for m in re.finditer(
            r"LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)",
            subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=True).stdout)]
        data = path.read_bytes()
        tables = {}
        for name, contents in ENTROPY_TABLES.items():
            offset = data.find(contents)
            if offset < 0 or data.find(contents, offset + 1) >= 0:
                raise RuntimeError(f"{path}: no single copy of the {name} table")
            tables[name] = (self.address(offset), len(contents))
        self.tables: dict[tuple[int, int], set[str]] = {}
        self.calls: dict[tuple[int, int], set[tuple[int, int]]] = {}
        disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)], capture_output=True,
                                     text=True, check=True).stdout
        # A call, or a jump into another function: a tail call, or the function's own cold part,
        # which GCC splits off as a function of its own.
        for m in re.finditer(r"^\s*([0-9a-f]+):\s+((?:call|j[a-z]+)\s+([0-9a-f]+)\s|.*# ([0-9a-f]+))", disassembly,
                             re.M):
            function = self.function_at(int(m[1], 16))
            if function is None:
                continue
            if m[3]:
                callee = self.function_at(int(m[3], 16))
                if callee and callee != function:
                    self.calls.setdefault(function, set()).add(callee)
                continue
            target = int(m[4], 16)
            for name, (start, size) in tables.items():
                if start <= target < start + size:
                    self.tables.setdefault(function, set()).add(name)

    def address(self, offset: int) -> int:
        """The virtual address of a file offset."""
        for file_offset, vaddr, size in self.segments:
            if file_offset <= offset < file_offset + size:
                return offset - file_offset + vaddr
        raise RuntimeError(f"{self.path}: offset {offset:#x} is in no loaded segment")

    def function_at(self, address: int) -> tuple[int, int] | None:
        i = bisect.bisect_right(self.starts, address) - 1
        return self.functions[i] if i >= 0 and address < self.functions[i][1] else None

    def parse_functions(self, samples: Counter, total: int) -> set[tuple[int, int]]:
        """The entropy-table users holding >= 1 % of `total` samples, and what they call."""
        parse = {f for f in self.tables if samples[f] >= total / 100}
        todo = list(parse)
        while todo:
            for callee in self.calls.get(todo.pop(), ()):
                if callee not in parse:
                    parse.add(callee)
                    todo.append(callee)
        return parse


def callgrind(arguments: list[str], folder: Path) -> dict[tuple[str, int], list[int]]:
    """This script run with `arguments` under callgrind: [instructions, mispredicted branches] per
    (object file name, address in it)."""
    out = folder / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes", "--dump-line=no", "--compress-strings=no",
                    "--compress-pos=no", "--branch-sim=yes", f"--callgrind-out-file={out}", sys.executable, __file__,
                    *arguments], capture_output=True, text=True, check=True)
    costs: dict[tuple[str, int], list[int]] = {}
    events: list[str] = []
    obj, after_call = "", False
    for line in out.read_text().splitlines():
        if after_call:  # the inclusive cost of the call above: counted where it was spent
            after_call = False
            continue
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("calls="):
            after_call = True
        elif line.startswith("ob="):
            obj = Path(line[3:]).name
        elif line.startswith("0x"):
            fields = line.split()
            values = dict(zip(events, (int(v) for v in fields[1:])))
            cost = costs.setdefault((obj, int(fields[0], 16)), [0, 0])
            cost[0] += values.get("Ir", 0)
            cost[1] += values.get("Bcm", 0) + values.get("Bim", 0)
    return costs


def instruction_counts(path: Path, library: Library, frames: int, folder: Path) -> dict:
    """Per frame: instructions and mispredicted branches of libavcodec's parse of `path`, and of
    our extension's parse for vectors + coefficients."""
    functions: Counter = Counter()
    mispredicted: Counter = Counter()
    for (obj, address), (instructions, misses) in callgrind(["--decode", str(path)], folder).items():
        if obj == library.path.name:
            function = library.function_at(address)
            functions[function] += instructions
            mispredicted[function] += misses
    parse = library.parse_functions(functions, sum(functions.values()))
    extension = Path(_h264.__file__).name
    ours_costs = [cost for (obj, _), cost in callgrind(["--ours", str(path)], folder).items() if obj == extension]
    return {"lavc_parse_instructions": sum(functions[f] for f in parse) / frames,
            "lavc_parse_mispredicted": sum(mispredicted[f] for f in parse) / frames,
            "our_instructions": sum(c[0] for c in ours_costs) / frames,
            "our_mispredicted": sum(c[1] for c in ours_costs) / frames}


def decode_frames(path: Path) -> None:
    """Runs under perf: (c), libavcodec's single-thread decode of `path`, then prints the decode's
    start and end on CLOCK_MONOTONIC (perf's clock with -k mono), so that the samples of Python's
    start-up are left out."""
    start = time.monotonic()
    libavcodec(path, 1, False)
    print(start, time.monotonic())


def profile(path: Path, library: Library, cpu: int, folder: Path) -> dict:
    """libavcodec's decode of `path` under perf: its samples per function, and the parse's share."""
    data = folder / "perf.data"
    run = subprocess.run(["perf", "record", "-q", "-k", "mono", "-e", "cpu-clock", "-F", "4000", "-o", str(data),
                          "--", "taskset", "-c", str(cpu), sys.executable, __file__, "--decode", str(path)],
                         capture_output=True, text=True, check=True)
    begin, end = (float(v) for v in run.stdout.split()[-2:])
    script = subprocess.run(["perf", "script", "-i", str(data), "--show-mmap-events", "-F", "time,ip,dso"],
                            capture_output=True, text=True, check=True).stdout
    name = library.path.name
    mappings = [(int(m[1], 16), int(m[2], 16), int(m[3], 16)) for m in re.finditer(
        r"PERF_RECORD_MMAP2? .*\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+|\d+) .*r-xp .*" + re.escape(name),
        script)]
    samples: Counter = Counter()
    total = 0
    for line in script.splitlines():
        fields = line.split()  # time: ip (dso)
        if len(fields) != 3 or not begin <= float(fields[0].rstrip(":")) <= end:
            continue
        total += 1
        if name not in fields[2]:
            samples["outside libavcodec"] += 1
            continue
        ip = int(fields[1], 16)
        for start, size, offset in mappings:
            if start <= ip < start + size:
                samples[library.function_at(library.address(ip - start + offset))] += 1
    parse = library.parse_functions(samples, total)
    parse_samples = sum(samples[f] for f in parse)
    with codec.open(path) as s:
        frames = len(s.frames)
    return {"frames": frames, "samples": total, "parse_share": parse_samples / total,
            "no_unwind_entry_share": samples[None] / total,
            "parse_functions": {f"{f[0]:#x}..{f[1]:#x}": round(samples[f] / total, 4)
                                for f in sorted(parse, key=lambda f: -samples[f]) if samples[f]}}


def main() -> None:
    parser = clip_arguments(__doc__, "H.264", "the generated clips and four conformance streams")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)),
                        help="the core every timed process runs on (default: the first this process may use)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions and mispredicted branches of both parses under valgrind")
    parser.add_argument("--decode", type=Path, help=argparse.SUPPRESS)  # the profiled process (internal)
    parser.add_argument("--ours", type=Path, help=argparse.SUPPRESS)  # our parse under callgrind (internal)
    args = parser.parse_args()
    if args.decode:
        decode_frames(args.decode)
        return
    if args.ours:
        ours(args.ours, 1, coefficients=True)
        return
    from tqdm import tqdm

    library = Library(loaded_libavcodec())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = clips_to_measure(args, Path(tmp), CONFORMANCE_STREAMS)
        os.sched_setaffinity(0, {args.cpu})
        for path in tqdm(clips, desc="measuring"):
            row = {"clip": path.name, **profile(path, library, args.cpu, Path(tmp))}
            if args.instructions:
                row |= instruction_counts(path, library, row["frames"], Path(tmp))
            best = {"c": float("inf"), "vc": float("inf")}
            for _ in range(args.repeat):
                best["c"] = min(best["c"], timed(lambda: libavcodec(path, 1, False)))
                best["vc"] = min(best["vc"], timed(lambda: ours(path, 1, coefficients=True)))
            rows.append(row | {name: row["frames"] / seconds for name, seconds in best.items()})
    print(f"libavcodec: {library.path}; fps over every frame, 1 thread, core {args.cpu}")
    print(f"{'clip':40} {'c':>6} {'vc':>6} {'parse':>6} {'asm':>6} {'lavc parse':>10}  lavc parse/c  vc/c  "
          "vc/lavc parse")
    for r in rows:
        lavc_parse = r["c"] / r["parse_share"] if r["parse_share"] else math.nan  # a clip too short to sample
        print(f"{r['clip']:40} {r['c']:6.0f} {r['vc']:6.0f} {r['parse_share']:6.1%} {r['no_unwind_entry_share']:6.1%} "
              f"{lavc_parse:10.0f}  {lavc_parse / r['c']:11.2f}  {r['vc'] / r['c']:4.2f}  {r['vc'] / lavc_parse:13.2f}")
    if args.instructions:
        print("\nper frame, under callgrind: instructions (M) and mispredicted branches (k, its branch model)")
        print(f"{'clip':40} {'lavc parse':>10} {'ours':>6} {'ours/lavc':>9} {'lavc mispr.':>11} {'ours':>6}")
        for r in rows:
            print(f"{r['clip']:40} {r['lavc_parse_instructions'] / 1e6:10.2f} {r['our_instructions'] / 1e6:6.2f} "
                  f"{r['our_instructions'] / r['lavc_parse_instructions']:9.2f} "
                  f"{r['lavc_parse_mispredicted'] / 1e3:11.1f} {r['our_mispredicted'] / 1e3:6.1f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
