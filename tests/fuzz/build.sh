#!/usr/bin/env bash
# Builds the libFuzzer target tests/fuzz/h264_fuzzer.cpp with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer into build/libfuzzer/h264_fuzzer (OUT=DIR elsewhere, CXX=... for
# another clang++). The parser is every csrc/*.cpp except the pybind11 layer.
set -euo pipefail
cd "$(dirname "$0")/../.."

CXX=${CXX:-clang++}
OUT=${OUT:-build/libfuzzer}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CXXFLAGS="-std=c++17 -O1 -g -fno-omit-frame-pointer $SANITIZE -Wall -Wextra -Icsrc"

mkdir -p "$OUT/obj"
sources=()
for f in csrc/*.cpp; do
  grep -q '#include <pybind11' "$f" || sources+=("$f")  # bindings.cpp and anything else pybind-bound
done
# Comparison tracing (libFuzzer's trace-cmp, which lets mutations insert the values a comparison
# wanted) pays off where the input's bytes are compared as they are: NAL framing, the avcC record,
# header fields. In the per-macroblock code (entropy-decoded values, transforms) it took over half
# of the run time for no coverage (measured: the same edges and features on a 1,500-input corpus,
# twice the executions per second without it), so those files, and the target's checks, go without.
NO_TRACE_CMP="slice_data.cpp macroblock_layer.cpp mv_prediction.cpp direct_prediction.cpp cabac_context.cpp residual_syntax.cpp cabac.cpp cavlc.cpp vlc.cpp transform.cpp bit_reader.cpp"
compile() {  # source, object
  local extra=""
  case " $NO_TRACE_CMP " in *" $(basename "$1") "*) extra="-fno-sanitize-coverage=trace-cmp" ;; esac
  # shellcheck disable=SC2086
  $CXX $CXXFLAGS -fsanitize=fuzzer-no-link $extra -c "$1" -o "$2"
}
export -f compile
export CXX CXXFLAGS NO_TRACE_CMP
# The parser with coverage instrumentation (fuzzer-no-link), the target with libFuzzer's main.
printf '%s\n' "${sources[@]}" | xargs -P "$JOBS" -I{} bash -c 'compile "$1" "$2/obj/$(basename "$1" .cpp).o"' _ {} "$OUT"
objects=()
for f in "${sources[@]}"; do objects+=("$OUT/obj/$(basename "$f" .cpp).o"); done
# shellcheck disable=SC2086
$CXX $CXXFLAGS -fsanitize=fuzzer -fno-sanitize-coverage=trace-cmp tests/fuzz/h264_fuzzer.cpp "${objects[@]}" \
  -o "$OUT/h264_fuzzer"
echo "built $OUT/h264_fuzzer from ${#sources[@]} parser sources"
