"""Builds the C++ extension vccv_gpu._h264 with CMake (metadata lives in pyproject.toml).

Environment: VCCV_SANITIZE=1 builds with AddressSanitizer + UBSan; VCCV_WERROR=1 makes
warnings errors (CI sets it); CMAKE_BUILD_PARALLEL_LEVEL sets the number of compile jobs.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def find_tool(name: str) -> str:
    """cmake/ninja from their PyPI packages (the build requirements), else from PATH
    (for `--no-build-isolation` installs on machines that have them but not the packages)."""
    try:
        module = __import__(name)
        return str(Path(module.CMAKE_BIN_DIR if name == "cmake" else module.BIN_DIR) / name)
    except ImportError:
        found = shutil.which(name)
        if not found:
            raise RuntimeError(f"building the extension needs {name}: pip install {name}") from None
        return found


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        sanitize = os.environ.get("VCCV_SANITIZE") == "1"
        build_dir = Path(self.build_temp).resolve() / ("sanitize" if sanitize else "release")
        build_dir.mkdir(parents=True, exist_ok=True)
        cmake_exe, ninja_exe = find_tool("cmake"), find_tool("ninja")
        configure = [
            cmake_exe, str(ROOT), "-G", "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={ninja_exe}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            "-DCMAKE_BUILD_TYPE=None",  # flags come from CMakeLists.txt (-O2, or the sanitizers)
            f"-DVCCV_SANITIZE={'ON' if sanitize else 'OFF'}",
            f"-DVCCV_WERROR={'ON' if os.environ.get('VCCV_WERROR') == '1' else 'OFF'}",
        ]
        subprocess.run(configure, cwd=build_dir, check=True)
        # Both flavours link to the same file: remove it so that ninja relinks the one asked for
        # (else switching VCCV_SANITIZE in a built tree silently keeps the other flavour's library).
        (out_dir / Path(self.get_ext_filename(ext.name)).name).unlink(missing_ok=True)
        for testing_module in (ROOT / "tests").glob("_h264_testing*"):  # the tests' module, likewise
            testing_module.unlink()
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.run([cmake_exe, "--build", ".", "-j", jobs], cwd=build_dir, check=True)


setup(
    ext_modules=[CMakeExtension("vccv_gpu._h264")],
    cmdclass={"build_ext": CMakeBuild},
    # + the bundled demo checkpoint (python -m vccv_gpu.caption's default): a folder of data files,
    # named as a package of its own (else setuptools warns that it "would be ignored")
    packages=[*find_packages(include=["vccv_gpu", "vccv_gpu.*"]), "vccv_gpu.assets.demo"],
    package_data={"vccv_gpu.assets.demo": ["*"]},
)
