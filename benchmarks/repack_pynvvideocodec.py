"""Repacks the PyNvVideoCodec wheel for the GPU check (benchmarks/gpu_check.sh): the same package
without what is never loaded, so that it fits in what travels to the GPU machine (64 MiB).

    python benchmarks/repack_pynvvideocodec.py .wheels/pynvvideocodec-2.2.4-cp312-cp312-manylinux_2_28_x86_64.whl

Left out (the wheel's RECORD rewritten to match; the file is replaced unless --out is given):

* `*.data/data/external/ffmpeg/src/`: the source archive of the FFmpeg it bundles (12 MB);
* `samples/` and `benchmarks/` (installed as top-level folders of site-packages);
* the extension module for the other NVENC API: PyNvVideoCodec's __init__ loads
  PyNvVideoCodec_130 with an NVENC 13 driver (580 and later, as on the GPU machine), else
  PyNvVideoCodec_121; --nvenc-api 121 keeps that one instead;
* the copies of libavformat/libavutil under names nothing loads: a wheel holds its symlinks as
  copies, and the modules ask for the sonames (libavformat.so.63, libavutil.so.61).

What is kept installs and imports as the original does (checked with 2.2.4: 25.6 MiB -> 3.7 MiB).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path, PurePosixPath

MODULE = re.compile(r"PyNvVideoCodec/PyNvVideoCodec_(\d+)\.")
SONAME = re.compile(r"lib[\w+-]+\.so\.\d+")  # libfoo.so.N: the name the dynamic loader asks for


def dropped(names: list[str], read, nvenc_api: str) -> set[str]:
    """The members of the wheel to leave out; `read(name)` gives a member's bytes."""
    out = set()
    for name in names:
        parts = PurePosixPath(name).parts
        if parts[0] in ("samples", "benchmarks") or "/external/ffmpeg/src/" in name:
            out.add(name)
        match = MODULE.match(name)
        if match and match.group(1) != nvenc_api:
            out.add(name)
    libraries: dict[bytes, list[str]] = {}
    for name in names:
        if re.fullmatch(r"PyNvVideoCodec/lib[^/]*\.so(\.[\d.]+)?", name):
            libraries.setdefault(hashlib.sha256(read(name)).digest(), []).append(name)
    for copies in libraries.values():
        keep = [n for n in copies if SONAME.fullmatch(PurePosixPath(n).name)]
        if len(keep) == 1:
            out.update(n for n in copies if n != keep[0])
    return out


def repack(wheel: Path, out: Path, nvenc_api: str) -> tuple[int, int, list[str]]:
    """Writes the repacked `wheel` to `out`: (size before, size after, members left out)."""
    with zipfile.ZipFile(wheel) as src:
        names = src.namelist()
        if not any(m and m.group(1) == nvenc_api for m in map(MODULE.match, names)):
            raise SystemExit(f"{wheel}: no PyNvVideoCodec_{nvenc_api} module in it (is it a PyNvVideoCodec wheel?)")
        left_out = dropped(names, src.read, nvenc_api)
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            for info in src.infolist():
                if info.filename in left_out:
                    continue
                data = src.read(info)
                if info.filename == record:
                    data = b"".join(line for line in data.splitlines(keepends=True)
                                    if line.split(b",")[0].decode() not in left_out)
                info.compress_type = zipfile.ZIP_DEFLATED
                dst.writestr(info, data, compresslevel=9)
    before = wheel.stat().st_size
    tmp.replace(out)
    return before, out.stat().st_size, sorted(left_out)


def check_record(wheel: Path) -> None:
    """Every file in the wheel is listed in RECORD with its hash (RECORD itself without), and
    nothing else is."""
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        listed = {}
        for line in z.read(record).decode().splitlines():
            name, digest, _ = line.rsplit(",", 2)
            listed[name] = digest
        members = {n for n in z.namelist() if not n.endswith("/")}  # folders are not listed
        if set(listed) != members:
            raise SystemExit(f"{wheel}: RECORD and the members differ: {sorted(set(listed) ^ members)[:5]}")
        for name, digest in listed.items():
            if name != record:
                want = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(z.read(name)).digest()).rstrip(b"=").decode()
                if digest != want:
                    raise SystemExit(f"{wheel}: {name}: RECORD says {digest}, the member is {want}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="a pynvvideocodec-*.whl")
    parser.add_argument("--out", type=Path, help="write here (default: replace the wheel)")
    parser.add_argument("--nvenc-api", default="130", choices=("121", "130"),
                        help="the extension module to keep (default 130: drivers 580 and later)")
    args = parser.parse_args(argv)
    if not args.wheel.is_file():
        parser.error(f"{args.wheel}: no such file")
    before, after, left_out = repack(args.wheel, args.out or args.wheel, args.nvenc_api)
    check_record(args.out or args.wheel)
    listed = [n for n in left_out if not n.endswith("/") and PurePosixPath(n).parts[0] not in ("samples", "benchmarks")]
    for name in listed:
        print(f"left out: {name}")
    print(f"left out: samples/, benchmarks/ ({len(left_out) - len(listed)} entries)")
    print(f"{args.out or args.wheel}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
