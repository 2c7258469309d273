#!/usr/bin/env bash
# The GPU check: probes the machine, installs the carried wheels, builds the project, runs every
# `gpu` test, then the GPU benchmarks while time is left, and writes its report into REPORT_DIR:
#
#   bash benchmarks/gpu_check.sh REPORT_DIR      (a device `run` with carry [".wheels"], timeout_s 600)
#
# REPORT_DIR gets summary.txt (probes of the machine, of the NVDEC/NVENC driver libraries and of
# the carried packages, then one line per step: ok, FAILED, TIMEOUT or SKIP, and its seconds),
# install.log, gpu_tests.txt, benchmarks.log and results.json (the benchmarks' JSON): five
# files, within the eight a `run` brings back, written even when steps fail. Every step runs
# under `timeout`, capped by what is left of GPU_CHECK_SECONDS (default 540), so that the whole
# check ends inside one 10-minute call; pytest stops a test after 120 s (--timeout). The wheels
# go to a temporary folder and the C++ extension is built in place: nothing is written into the
# machine's Python.
#
# The GPU machine: Python 3.12 with torch (CUDA), triton, pytest, pytest-timeout, pybind11,
# cmake, ninja, setuptools, safetensors, tqdm, torchvision and scikit-image (none carried), no
# network. What it lacks travels in .wheels (ignored by git), made here:
#
#   pip download pynvvideocodec==2.2.4 --no-deps --only-binary=:all: --python-version 3.12 \
#     --platform manylinux_2_28_x86_64 -d .wheels
#   python benchmarks/repack_pynvvideocodec.py .wheels/pynvvideocodec-2.2.4-*.whl   # 25.6 -> 3.7 MiB
#   pip download av==18.1.0 --no-deps --only-binary=:all: --python-version 3.12 \
#     --platform manylinux_2_28_x86_64 -d .wheels      # PyAV: the tests' clips, CPU references, muxing
#
# carry: .wheels = 37.8 MiB (PyAV 34.1, PyNvVideoCodec repacked 3.7; measured 2026-12-04)
# With the work tree (tracked files, 9.5 MiB) that is 47.3 of the 64 MiB a call may send;
# tests/test_gpu_check.py checks the sum. No clips travel: the tests and benchmarks make theirs
# there with PyAV's libx264.
set -uo pipefail
OUT=${1:?usage: bash benchmarks/gpu_check.sh REPORT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."

BUDGET=${GPU_CHECK_SECONDS:-540}
SUMMARY=$OUT/summary.txt
SCRATCH=$(mktemp -d)  # benchmark outputs; merged into results.json at the end
SITE=$SCRATCH/site    # the carried wheels, installed
export PYTHONPATH=$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
status=0
: > "$SUMMARY"

note() { echo "$*" >> "$SUMMARY"; }

# step NAME LOG CAP COMMAND...: runs COMMAND (output appended to LOG) under `timeout`, CAP seconds
# or what is left of the budget if less; one line in summary.txt. Returns COMMAND's status.
step() {
  local name=$1 log=$2 cap=$3
  shift 3
  local left=$((BUDGET - SECONDS))
  if ((left < 20)); then
    note "$(printf '%-26s SKIP: the %ss budget is spent' "$name" "$BUDGET")"
    status=1
    return 1
  fi
  ((cap > left)) && cap=$left
  local started=$SECONDS rc what
  echo "===== $name (timeout ${cap}s): $*" >> "$log"
  timeout --kill-after=10 "$cap" "$@" >> "$log" 2>&1
  rc=$?
  case $rc in
    0) what=ok ;;
    124 | 137) what="TIMEOUT after ${cap}s" ;;
    *) what="FAILED (exit $rc)" ;;
  esac
  note "$(printf '%-26s %-22s %4ss   (%s)' "$name" "$what" $((SECONDS - started)) "$(basename "$log")")"
  ((rc == 0)) || status=1
  return $rc
}

skip() { note "$(printf '%-26s SKIP: %s' "$1" "$2")"; status=1; }

finish() {
  timeout 30 python3 - "$SCRATCH" "$OUT/results.json" <<'EOF' || note "results.json: could not be written"
import json, pathlib, sys
results = {}
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.json")):
    try:
        results[str(path.relative_to(sys.argv[1]))] = json.loads(path.read_text())
    except ValueError as e:
        results[str(path.relative_to(sys.argv[1]))] = f"unreadable: {e}"
pathlib.Path(sys.argv[2]).write_text(json.dumps(results, indent=1))
EOF
  note "total ${SECONDS}s, exit status $status"
  rm -rf "$SCRATCH"
}
trap finish EXIT

probe_machine() {
  date -u
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: FAILED"
  python3 - <<'EOF'
import ctypes, importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "triton", "pytest", "pytest_timeout", "pybind11", "skimage"):
    try:
        module = importlib.import_module(name)
        print(f"ok       {name} {getattr(module, '__version__', '')}")
    except Exception as e:
        print(f"MISSING  {name}: {type(e).__name__}: {e}")
try:
    import torch
    print("torch.cuda", torch.version.cuda, "available:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as e:
    print(f"torch.cuda: {type(e).__name__}: {e}")
for lib, role in (("libcuda.so.1", "the CUDA driver"), ("libnvcuvid.so.1", "NVDEC: PyNvVideoCodec's decoders"),
                  ("libnvidia-encode.so.1", "NVENC: PyNvVideoCodec's encoder; its import fails without it")):
    try:
        ctypes.CDLL(lib)
        print(f"found    {lib}")
    except OSError as e:
        print(f"MISSING  {lib} ({role}): {e}")
EOF
}

probe_imports() {
  python3 - <<'EOF'
import importlib
for name in ("PyNvVideoCodec", "av"):
    try:
        module = importlib.import_module(name)
        print(f"ok       {name} {getattr(module, '__version__', '')} from {module.__file__}")
    except Exception as e:
        print(f"MISSING  {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
EOF
}

note "== machine"
timeout 60 bash -c "$(declare -f probe_machine); probe_machine" >> "$SUMMARY" 2>&1 || note "probe: FAILED or timed out"

note "== steps"
if compgen -G ".wheels/*.whl" > /dev/null; then
  step "install wheels" "$OUT/install.log" 120 \
    python3 -m pip install --no-index --no-deps --no-cache-dir --no-compile --target "$SITE" .wheels/*.whl
else
  skip "install wheels" "no .wheels/*.whl (nothing carried? see the top of this file)"
fi
timeout 60 bash -c "$(declare -f probe_imports); probe_imports" >> "$SUMMARY" 2>&1 || note "imports: FAILED or timed out"
# the C++ extension, built in place (nothing written into the machine's Python)
if ! step "build vccv_gpu" "$OUT/install.log" 240 python3 setup.py build_ext --inplace; then
  skip "gpu tests, benchmarks" "vccv_gpu did not build (install.log)"
  exit "$status"
fi
# One xdist worker where pytest-xdist is there: a test that crashes its process (a CUDA abort)
# is reported as such and the rest still run, with every failure's traceback (without it the
# first run on an H100 lost them all). test_ray_engine.py needs ray, which that machine lacks
# (and has no gpu tests).
PYTEST_ARGS=()
python3 -c "import xdist" 2> /dev/null && PYTEST_ARGS+=(-n 1)
python3 -c "import ray" 2> /dev/null || PYTEST_ARGS+=(--ignore=tests/test_ray_engine.py)
step "gpu tests" "$OUT/gpu_tests.txt" 270 \
  python3 -m pytest -m gpu -v -rs --timeout=120 -p no:cacheprovider "${PYTEST_ARGS[@]}" tests
note "  pytest: $(grep -v '^[[:space:]]*$' "$OUT/gpu_tests.txt" | tail -n 1)"

B=$OUT/benchmarks.log
# most wanted first: the budget ends the list wherever it runs out (kernels.py compiles the
# reference twice, default and reduce-overhead: it took over 90 s on an H100)
step "kernels fp32" "$B" 180 python3 benchmarks/kernels.py --json "$SCRATCH/kernels.json"
step "frontend cuda" "$B" 150 python3 benchmarks/frontend.py --device cuda --sizes 1280x720 --seconds 10 \
  --repeat 3 --json "$SCRATCH/frontend_cuda.json"
step "throughput demo" "$B" 150 python3 benchmarks/throughput.py --device cuda --sizes 1280x720 --seconds 10 \
  --batch 8 --workers 4 --out "$SCRATCH/throughput_demo"
step "kernels bf16" "$B" 150 python3 benchmarks/kernels.py --dtype bf16 --json "$SCRATCH/kernels_bf16.json"
step "throughput paper" "$B" 150 python3 benchmarks/throughput.py --device cuda --model paper --sizes 1280x720 \
  --seconds 10 --batch 8 --workers 4 --out "$SCRATCH/throughput_paper"
# CPU-only, for the machine's 16 cores
step "parse speed" "$B" 90 python3 benchmarks/parse_speed.py --size 1280x720 --frames 250 \
  --out "$SCRATCH/parse_speed.json"
step "parser" "$B" 120 python3 benchmarks/parser.py --sizes 1280x720 --seconds 10 --out "$SCRATCH/parser.json"
exit $status
