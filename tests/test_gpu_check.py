"""benchmarks/gpu_check.sh fits in what travels to the GPU machine (64 MiB: the work tree, i.e.
tracked files and untracked ones git does not ignore, plus the carried folder its header names),
and benchmarks/repack_pynvvideocodec.py leaves out what that header counts on."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu_check.sh"
REPACK = ROOT / "benchmarks" / "repack_pynvvideocodec.py"
LIMIT = 64 * 2**20  # what one device call may send
# Packages the GPU machine has (its image): carrying them only spends the limit.
MACHINE_HAS = {"pybind11", "safetensors", "tqdm", "torchvision", "torch", "triton", "numpy", "pytest"}


def documented_carry() -> tuple[str, float]:
    """The carried folder and its size in MiB, from the header line '# carry: FOLDER = N MiB'."""
    match = re.search(r"^# carry: (\S+) = ([\d.]+) MiB", CHECK.read_text(), re.MULTILINE)
    assert match, f"{CHECK}: its header has no '# carry: FOLDER = N MiB' line"
    return match.group(1), float(match.group(2))


def work_tree_bytes() -> int:
    try:
        command = ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        listed = subprocess.run(command, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"{ROOT} is not a git checkout ({e}): what travels cannot be listed")
    paths = {ROOT / name for name in listed.decode().split("\0") if name}
    return sum(path.stat().st_size for path in paths if path.is_file())


def test_work_tree_and_documented_carry_fit() -> None:
    folder, mib = documented_carry()
    tree = work_tree_bytes()
    total = tree + mib * 2**20
    assert total < LIMIT, (f"work tree {tree / 2**20:.1f} MiB + {folder} {mib} MiB (gpu_check.sh) = "
                           f"{total / 2**20:.1f} MiB, over the {LIMIT / 2**20:.0f} MiB a device call may send")


def test_carried_wheels_are_as_documented() -> None:
    """Where the folder has been made (see gpu_check.sh's header), its wheels weigh what the
    header says, leave out what the machine has, and PyNvVideoCodec's is the repacked one."""
    folder, mib = documented_carry()
    wheels = sorted((ROOT / folder).glob("*.whl"))
    if not wheels:
        pytest.skip(f"no {folder}/*.whl here (made as benchmarks/gpu_check.sh says): only the work tree was checked")
    size = sum(w.stat().st_size for w in wheels)
    assert size / 2**20 <= mib + 0.05, f"{folder} holds {size / 2**20:.1f} MiB, gpu_check.sh says {mib} MiB"
    names = {w.name.split("-")[0].lower() for w in wheels}
    assert not names & MACHINE_HAS, f"{folder}: {sorted(names & MACHINE_HAS)} are on the GPU machine already"
    assert {"av", "pynvvideocodec"} <= names, f"{folder}: has {sorted(names)}"
    (pnvc,) = [w for w in wheels if w.name.lower().startswith("pynvvideocodec-")]
    with zipfile.ZipFile(pnvc) as z:
        members = z.namelist()
    leftovers = [n for n in members if n.startswith(("samples/", "benchmarks/")) or n.endswith(".tar.xz")
                 or re.search(r"PyNvVideoCodec_121\.", n)]
    assert not leftovers, f"{pnvc} is not repacked (benchmarks/repack_pynvvideocodec.py): {leftovers[:3]}"


def _load_repack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("repack_pynvvideocodec", REPACK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def test_repack_leaves_out_what_is_never_loaded(tmp_path: Path) -> None:
    """On a wheel laid out as PyNvVideoCodec 2.2.4's: samples, benchmarks, the FFmpeg source
    archive, the other NVENC API's module and the library copies under non-soname names go;
    RECORD follows."""
    library, other = b"\x7fELF avformat" * 100, b"\x7fELF avutil" * 100
    files = {
        "PyNvVideoCodec/__init__.py": b"# init\n",
        "PyNvVideoCodec/PyNvVideoCodec_121.cpython-312-x86_64-linux-gnu.so": b"module 121",
        "PyNvVideoCodec/PyNvVideoCodec_130.cpython-312-x86_64-linux-gnu.so": b"module 130",
        "PyNvVideoCodec/libavformat.so": library,
        "PyNvVideoCodec/libavformat.so.63": library,
        "PyNvVideoCodec/libavformat.so.63.1.101": library,
        "PyNvVideoCodec/libavutil.so.61": other,
        "samples/basic/encode.py": b"print()\n",
        "benchmarks/run.py": b"print()\n",
        "pynvvideocodec-2.2.4.data/data/external/ffmpeg/readme.txt": b"FFmpeg, LGPL\n",
        "pynvvideocodec-2.2.4.data/data/external/ffmpeg/src/ffmpeg-9.0.1.tar.xz": b"source" * 1000,
        "pynvvideocodec-2.2.4.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
    }
    record = "pynvvideocodec-2.2.4.dist-info/RECORD"
    wheel = tmp_path / "pynvvideocodec-2.2.4-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("PyNvVideoCodec/", b"")
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(record, "\n".join([_record_line(n, d) for n, d in files.items()] + [f"{record},,"]) + "\n")
    repack = _load_repack()
    assert repack.main([str(wheel)]) == 0  # in place; checks RECORD against the members itself
    with zipfile.ZipFile(wheel) as z:
        kept = {n for n in z.namelist() if not n.endswith("/")}
        listed = {line.split(",")[0] for line in z.read(record).decode().splitlines()}
    assert kept == listed == {
        "PyNvVideoCodec/__init__.py", "PyNvVideoCodec/PyNvVideoCodec_130.cpython-312-x86_64-linux-gnu.so",
        "PyNvVideoCodec/libavformat.so.63", "PyNvVideoCodec/libavutil.so.61",
        "pynvvideocodec-2.2.4.data/data/external/ffmpeg/readme.txt", "pynvvideocodec-2.2.4.dist-info/WHEEL", record}
    assert repack.main([str(wheel)]) == 0  # again: nothing more to leave out
    with pytest.raises(SystemExit, match="no PyNvVideoCodec_121 module"):
        repack.main([str(wheel), "--nvenc-api", "121"])
