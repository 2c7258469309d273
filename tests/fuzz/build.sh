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
# The parser with coverage instrumentation (fuzzer-no-link), the target with libFuzzer's main.
printf '%s\n' "${sources[@]}" | xargs -P "$JOBS" -I{} sh -c \
  'o="$1/obj/$(basename "$2" .cpp).o"; '"$CXX $CXXFLAGS"' -fsanitize=fuzzer-no-link -c "$2" -o "$o"' _ "$OUT" {}
objects=()
for f in "${sources[@]}"; do objects+=("$OUT/obj/$(basename "$f" .cpp).o"); done
# shellcheck disable=SC2086
$CXX $CXXFLAGS -fsanitize=fuzzer tests/fuzz/h264_fuzzer.cpp "${objects[@]}" -o "$OUT/h264_fuzzer"
echo "built $OUT/h264_fuzzer from ${#sources[@]} parser sources"
