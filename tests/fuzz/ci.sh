#!/usr/bin/env bash
# The libFuzzer step of CI (.ci/run), in the project's virtualenv: installs clang if it is
# missing, builds tests/fuzz/h264_fuzzer.cpp (build.sh), replays every input of
# tests/fuzz/regressions/, prepares the seeds (make_seeds.py: the conformance streams beside the
# clone and generated clips) and fuzzes for LIBFUZZER_SECONDS (default 180) in one process.
# A crash, sanitizer report, timeout or OOM fails; the input is left in build/libfuzzer/crashes/
# and the whole log in build/libfuzzer/fuzz.log. Where clang cannot be installed, the step is
# skipped with a loud message (it does not fail CI).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=build/libfuzzer
SECONDS_TO_FUZZ=${LIBFUZZER_SECONDS:-180}
# A case may take 10 s (as in the Python campaign); 2 GiB covers level 6.2 frames with ASan.
OPTIONS=(-timeout=10 -rss_limit_mb=2048 -max_len=16384)
started=$(date +%s)

skip() {
  printf '\n%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  printf '!!! SKIPPED: the libFuzzer step (%s)\n' "$1" >&2
  printf '!!! This machine cannot build the libFuzzer target; install clang (apt-get install clang).\n' >&2
  printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  exit 0
}

libfuzzer_works() {
  local probe
  probe=$(mktemp -d)
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1
  local ok=$?
  rm -rf "$probe"
  return $ok
}

if ! command -v clang++ >/dev/null 2>&1 || ! libfuzzer_works; then
  echo "libfuzzer: clang++ with libFuzzer is missing: installing clang with apt-get"
  if [ "$(id -u)" = 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    skip "clang is not installed, and this user can neither apt-get nor sudo -n"
  fi
  apt_install() { ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; }
  apt_install || { ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq && apt_install; } || skip "apt-get install clang failed"
  command -v clang++ >/dev/null 2>&1 || skip "clang++ is still missing after apt-get install clang"
  libfuzzer_works || skip "clang++ cannot link -fsanitize=fuzzer,address,undefined (libFuzzer missing)"
fi
echo "libfuzzer: $(clang++ --version | head -n 1)"

tests/fuzz/build.sh
built=$(date +%s)

# Every committed regression input, once each.
regressions=(tests/fuzz/regressions/*)
if [ -e "${regressions[0]}" ]; then
  "$OUT/h264_fuzzer" "${OPTIONS[@]}" "${regressions[@]}" > "$OUT/regressions.log" 2>&1 || {
    cat "$OUT/regressions.log"
    echo "libfuzzer: FAILED: a regression input of tests/fuzz/regressions/ fails again (log above)" >&2
    exit 1
  }
  echo "libfuzzer: ${#regressions[@]} regression inputs replayed"
fi

python tests/fuzz/make_seeds.py --out "$OUT/seeds" --clips build/fuzz/clips
mkdir -p "$OUT/corpus" "$OUT/crashes"
seeded=$(date +%s)

# One process; new inputs go to $OUT/corpus, findings to $OUT/crashes/. The log shown here
# leaves out the NEW/REDUCE lines and the recommended dictionary (all of it is in $OUT/fuzz.log).
set +e
"$OUT/h264_fuzzer" "${OPTIONS[@]}" -dict=tests/fuzz/h264.dict -max_total_time="$SECONDS_TO_FUZZ" \
  -print_final_stats=1 -artifact_prefix="$OUT/crashes/" "$OUT/corpus" "$OUT/seeds" tests/fuzz/regressions \
  2>&1 | tee "$OUT/fuzz.log" | grep --line-buffered -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE) |# Uses: [0-9]+$'
status=${PIPESTATUS[0]}
set -e
finished=$(date +%s)
echo "libfuzzer: build $((built - started)) s, regressions and seeds $((seeded - built)) s," \
  "fuzzing $((finished - seeded)) s"
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$OUT/crashes")" ]; then
  echo "libfuzzer: FAILED (exit status $status): the input is in $OUT/crashes/:" >&2
  ls -l "$OUT/crashes" >&2
  echo "reproduce with: $OUT/h264_fuzzer $OUT/crashes/FILE; once fixed, add the file to tests/fuzz/regressions/" >&2
  exit 1
fi
