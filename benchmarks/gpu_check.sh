#!/usr/bin/env bash
# Whoever is lent a GPU runs this first, in one `run` call, and reads the report it leaves:
#
#   here:  pip download pynvvideocodec==2.2.4 --no-deps --only-binary=:all: --python-version 3.12 \
#            --platform manylinux_2_28_x86_64 -d .wheels
#          pip download pybind11 tqdm --no-deps --only-binary=:all: --python-version 3.12 -d .wheels
#          pip download safetensors --no-deps --only-binary=:all: --python-version 3.12 \
#            --platform manylinux_2_17_x86_64 -d .wheels     # checkpoints, the demo model, feature stores
#          pip download av==18.1.0 --no-deps --only-binary=:all: --python-version 3.12 \
#            --platform manylinux_2_28_x86_64 -d .wheels     # 36 MB; throughput.py needs PyAV there
#          python benchmarks/parse_speed.py --frames 250 --out /dev/null   # (checks it runs here)
#          mkdir -p .bench_clips && python -m vccv_gpu.testing .bench_clips/720p-cavlc.h264 --size 1280x720 \
#            --frames 250 --entropy cavlc --profile main
#          python -m vccv_gpu.testing .bench_clips/gop250-b.h264 --size 320x180 --frames 48 --gop 250 --bframes 2
#            # tests/test_gpu_frontend.py generates its clips when the PyAV wheel travels; without PyAV it
#            # takes the first two .bench_clips/*.h264 (raw Annex B: the parser reads them without PyAV)
#            # and runs only the checks that need no CPU decode (residual planes, devices, host copies)
#   run:   bash benchmarks/gpu_check.sh "$OUT"     with carry [".wheels", ".bench_clips"]
#
# The GPU machine has no network and no PyAV: wheels and clips travel with the work tree (the PyAV
# wheel, with its libx264, lets throughput.py generate its clips and decode there).
# It installs the wheels and the project, runs every `gpu` test and every benchmark that can run
# there, and writes machine.txt, install.log, gpu_tests.txt and one file per benchmark to OUT.
set -uo pipefail
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

{ date; nvidia-smi; python -V; python -c "import torch; print('torch', torch.__version__)"; } > "$OUT/machine.txt" 2>&1
{
  if compgen -G ".wheels/*.whl" > /dev/null; then pip install --no-deps .wheels/*.whl; fi
  pip install --no-deps --no-build-isolation -e .
} > "$OUT/install.log" 2>&1 || { echo "install failed: see install.log"; tail -40 "$OUT/install.log"; exit 1; }

# Test modules that need PyAV (absent there) cannot be collected: the others still run.
python -m pytest -m gpu -v -rs --continue-on-collection-errors tests > "$OUT/gpu_tests.txt" 2>&1
status=$?
[ "$status" -eq 5 ] && echo "no gpu tests collected yet" >> "$OUT/gpu_tests.txt" && status=0

python benchmarks/kernels.py --json "$OUT/kernels.json" > "$OUT/kernels.txt" 2>&1 || status=1
python benchmarks/kernels.py --dtype bf16 --json "$OUT/kernels_bf16.json" > "$OUT/kernels_bf16.txt" 2>&1 || status=1

if [ -d .bench_clips ]; then
  python benchmarks/parse_speed.py --clips .bench_clips --out "$OUT/parse_speed.json" > "$OUT/parse_speed.txt" 2>&1 \
    || status=1
  python benchmarks/parser.py .bench_clips/*cavlc* --out "$OUT/parser.json" > "$OUT/parser.txt" 2>&1 || status=1
fi
# End to end against its limits and baselines: generated 10-s 720p clips (GOP 12 without B-frames,
# GOP 250 with); the bundled demo model, and the paper's model sizes with random weights (speed does
# not depend on them) where torchvision is installed (its ResNets; the demo's tiny ones need none).
if python -c "import av" 2> /dev/null; then
  # The front end alone (sample_clip, N=20, 224) against NVDEC's bound and SimpleDecoder seeking.
  python benchmarks/frontend.py --device cuda --sizes 1280x720 --seconds 10 --repeat 3 \
    --json "$OUT/frontend_cuda.json" > "$OUT/frontend_cuda.txt" 2>&1 || status=1
  python benchmarks/throughput.py --device cuda --sizes 1280x720 --seconds 10 --batch 8 --workers 4 \
    --out "$OUT/throughput_demo" > "$OUT/throughput_demo.txt" 2>&1 || status=1
  if python -c "import torchvision" 2> /dev/null; then
    python benchmarks/throughput.py --device cuda --model paper --sizes 1280x720 --seconds 10 --batch 8 \
      --workers 4 --out "$OUT/throughput" > "$OUT/throughput.txt" 2>&1 || status=1
  else
    echo "throughput --model paper: not run, torchvision is not installed" > "$OUT/throughput.txt"
  fi
else
  echo "throughput, frontend: not run, PyAV is not installed (put its wheel in .wheels, see the top of this file)" \
    > "$OUT/throughput.txt"
fi
tail -n 3 "$OUT"/*.txt
exit "$status"
