#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (OW_FUZZ=ON, ASan+UBSan) and runs each for a
# while, starting from its committed corpus. Exits non-zero if any target finds a crash, a leak, a
# timeout or a failed property; the input is left in DIR/artifacts/<target>/.
#
#   tests/fuzz/run.sh [--seconds S] [--build DIR] [--jobs N] [TARGET...]
#
#   --seconds S   time per target (default 12: the test suite's short run; 3600 for a long run)
#   --build DIR   build directory (default build-fuzz)
#   --rss MB      memory limit per target (default 2048)
#   TARGET...     only these targets (default: all, see tests/fuzz/CMakeLists.txt)
#
# New inputs go to DIR/corpus/<target>/ (seeded from tests/fuzz/corpus/<target>/), never into the
# source tree. To keep the useful ones, merge them into the committed corpus (README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=12
dir=build-fuzz
rss=2048
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build) dir="$2"; shift 2 ;;
    --rss) rss="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(proto_server proto_client content config entity_record action recovery gltf)
fi

CC="${FUZZ_CC:-clang}" cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOW_FUZZ=ON >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for t in "${targets[@]}"; do
  bin="$dir/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "run.sh: no target $t ($bin)" >&2; exit 2; }
  mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  log="$dir/artifacts/$t.log"
  set +e
  # No single allocation of a target may reach 256 MB: every input is small, so one that does is
  # an amplification bug (a count trusted before the bytes behind it were checked).
  "$bin" -max_total_time="$seconds" -rss_limit_mb="$rss" -malloc_limit_mb=256 -timeout=10 \
    -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$t/" "${dict[@]}" "$dir/corpus/$t" "tests/fuzz/corpus/$t" \
    >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 |
        grep -oE 'cov: [0-9]+ ft: [0-9]+' || echo 'cov: ?')
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ok seconds=$seconds execs=$execs $cov"
  else
    echo "fuzz $t: FAILED (exit $rc) execs=$execs $cov; log $log"
    grep -E 'ERROR|SUMMARY|property failed|Test unit written' "$log" | head -5 | sed 's/^/  /'
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each without a finding"
