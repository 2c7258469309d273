"""The sdist is complete (issue 23): it carries what builds the extension (CMakeLists.txt, every
csrc/ source and header), the whole package with the bundled demo model, and no build output.

Only the sdist is built here (a few seconds, no compiler): .ci/run goes on to build a wheel from
it, install that into a fresh virtualenv and caption a clip."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUNK_DIRS = {"build", ".ci-venv", ".venv", ".wheels", ".bench_clips", ".git", "__pycache__"}
JUNK_SUFFIXES = (".so", ".pyd", ".o", ".pyc")
# What a built, tested checkout holds beside its sources; none of it may reach the sdist.
PLANTED_JUNK = [
    "build/temp.linux-x86_64-cpython-311/release/CMakeFiles/x.o", "build/fuzz/report.json",
    ".ci-venv/lib/python3.11/site-packages/x.py", ".wheels/x.whl", ".bench_clips/x.h264",
    "vccv_gpu/_h264.cpython-311-x86_64-linux-gnu.so", "tests/_h264_testing.cpython-311-x86_64-linux-gnu.so",
    "vccv_gpu/__pycache__/caption.cpython-311.pyc", "tests/__pycache__/conftest.cpython-311.pyc",
]


def source_files() -> list[str]:
    """The checkout's files as a fresh clone (plus new, not ignored files) would have them; without
    git (an unpacked sdist), every file outside the folders and files of JUNK_DIRS/JUNK_SUFFIXES."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                  if not (JUNK_DIRS | {"vccv_gpu.egg-info", ".pytest_cache"}) & set(p.relative_to(ROOT).parts)]
    return [n for n in listed if n and not n.endswith(JUNK_SUFFIXES) and (ROOT / n).is_file()]


@pytest.fixture(scope="module")
def sdist_members(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The paths in an sdist built from a copy of the checkout with PLANTED_JUNK added, relative to
    its top folder (vccv_gpu-VERSION/). A copy, so that no stale vccv_gpu.egg-info/SOURCES.txt
    (which setuptools adds to what MANIFEST.in lists) can hide a missing line, and the checkout
    is left alone."""
    if importlib.util.find_spec("build") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("`build` is missing: it is in the test extra (pip install -e '.[test]')")
        pytest.skip("needs `build` (pip install -e '.[test]')")
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("sdist")
    for name in source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    for name in PLANTED_JUNK:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"junk")
    # No isolated environment (nothing to download) and no check of the extension's build
    # requirements (cmake, ninja, pybind11): an sdist needs only setuptools.
    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--skip-dependency-check",
                            "--outdir", str(out), str(src)], capture_output=True, text=True)
    assert built.returncode == 0, f"python -m build --sdist failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    [tarball] = out.glob("vccv_gpu-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    top = {n.split("/", 1)[0] for n in names}
    assert top == {tarball.name.removesuffix(".tar.gz")}, top
    return {n.split("/", 1)[1] for n in names}


def test_sdist_has_what_builds_the_extension(sdist_members: set[str]) -> None:
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "csrc").iterdir() if p.suffix in (".cpp", ".h")}
    assert any(s.endswith(".cpp") for s in sources) and any(s.endswith(".h") for s in sources)
    build_files = {"CMakeLists.txt", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md"}
    missing = sorted((sources | build_files) - sdist_members)
    assert not missing, f"missing from the sdist: {missing}"


def test_sdist_has_the_package_and_the_demo_model(sdist_members: set[str]) -> None:
    demo = {p.relative_to(ROOT).as_posix() for p in (ROOT / "vccv_gpu" / "assets" / "demo").iterdir()}
    assert {"vccv_gpu/assets/demo/config.json", "vccv_gpu/assets/demo/model.safetensors"} <= demo
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "vccv_gpu").rglob("*.py")}
    # the tests and what they use (helpers, tools/), so that an unpacked sdist can run them
    testing = {"tests/conftest.py", "tests/test_packaging.py", "tools/clips.py", "tools/fuzz/harness.py"}
    missing = sorted((demo | modules | testing) - sdist_members)
    assert not missing, f"missing from the sdist: {missing}"


def test_sdist_has_no_build_output(sdist_members: set[str]) -> None:
    junk = sorted(n for n in sdist_members
                  if n.endswith(JUNK_SUFFIXES) or JUNK_DIRS & set(n.split("/")[:-1]) or n in PLANTED_JUNK)
    assert not junk, f"build output or caches in the sdist: {junk[:10]}"
