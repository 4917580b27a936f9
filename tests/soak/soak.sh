#!/usr/bin/env bash
# soak: the real server under steady load for a while, watched for leaks (README.md beside this
# file). otherworld-load (clients/c/load.c) plays N VR players with poses and actions; every few
# seconds the script samples the server's resident memory (/proc/PID/status: VmRSS and RssAnon),
# its own heap (mem_bytes) and its tick time (seal_p99_us + publish_p99_us, as bench/room.sh
# reports it) from the /status JSON endpoint. After a warm-up it fits a least-squares line to each
# and prints the slopes as key=value lines.
#
# It fails when the server dies, does not exit 0 on SIGTERM, reports a store error, or when its
# anonymous resident memory grows past a generous bound that only a leak crosses:
#   growth after the warm-up > 64 MiB + 1 MiB per minute measured          (every run), or
#   slope after the warm-up > 1024 kB/min, over at least 5 measured minutes (long runs).
# File-backed pages (the LMDB map, which grows with the frame log up to frame_log_keep) are
# reported in VmRSS but are not a leak, so the bound is on RssAnon. Tick time is only reported:
# the machines are shared and noisy, and this is not a timing test.
#
# usage: tests/soak/soak.sh [--build DIR] [--short | --minutes M | --seconds S] [--players N]
#                           [--pose-hz H] [--action-interval-ms A] [--interval S]
#                           [--rss-growth-max-kb K] [--rss-slope-max-kb-per-min K] [--keep]
# modes: --short: the test suite's (ctest soak_short): 40 s, 50 players, poses at 20 Hz; with
#          OW_SOAK_MINUTES=M in the environment, M minutes at the defaults instead (long mode);
#        --minutes 10: the long mode (100 players, poses at 30 Hz, an action a second each);
#        --minutes 720: 12 hours. Later flags override earlier ones.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../../build"
seconds=600
players=100
pose_hz=30
action_ms=1000
interval=5
growth_max_kb=""
slope_max_kb=1024
keep=0
usage() {
  sed -n '/^# usage:/,/^#        --minutes 720/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift ;;
    --short)
      if [ -n "${OW_SOAK_MINUTES:-}" ]; then seconds=$((OW_SOAK_MINUTES * 60))
      else seconds=40; players=50; pose_hz=20; fi ;;
    --minutes) seconds=$(($2 * 60)); shift ;;
    --seconds) seconds="$2"; shift ;;
    --players) players="$2"; shift ;;
    --pose-hz) pose_hz="$2"; shift ;;
    --action-interval-ms) action_ms="$2"; shift ;;
    --interval) interval="$2"; shift ;;
    --rss-growth-max-kb) growth_max_kb="$2"; shift ;;
    --rss-slope-max-kb-per-min) slope_max_kb="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) usage ;;
    *) echo "soak: unknown argument $1" >&2; usage ;;
  esac
  shift
done
server="$build/otherworld"
load="$build/otherworld-load"
[ -x "$server" ] && [ -x "$load" ] || { echo "soak: build first: $server and $load" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# The warm-up (logins, first snapshots, allocator arenas) is left out of the fits.
warmup=$((seconds / 5))
[ "$warmup" -lt 10 ] && warmup=10
# An AddressSanitizer build keeps freed memory in a quarantine (256 MiB by default) that fills
# for minutes and would look like a leak; a small one keeps the bound meaningful there too.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ow-soak-XXXXXX")"
pid=""
loadpid=""
cleanup() {
  [ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null || true
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "soak: files kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
fail() {
  echo "soak: FAIL: $*" >&2
  tail -n 20 "$tmp/server.log" >&2 || true
  keep=1
  exit 1
}

"$server" --data_dir "$tmp/data" --bind 127.0.0.1 --port 0 --shutdown_notice_s 0 \
  --pwhash_ops 1 --pwhash_mem_kb 64 --max_players "$((players + 10))" 2>"$tmp/server.log" &
pid=$!
port=""
for _ in $(seq 1 600); do
  port="$(grep -o 'url=ws://127.0.0.1:[0-9]*' "$tmp/server.log" | grep -o '[0-9]*$' || true)"
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
  sleep 0.05
done
[ -n "$port" ] || fail "the server did not start"

# GET /status as one line of JSON (bash's /dev/tcp, as bench/room.sh does).
status() {
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
  timeout 10 cat <&3 | tail -n 1
  exec 3>&-
}
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([A-Za-z0-9_.]*\).*/\1/p"; }
proc_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }

echo "soak: players=$players pose_hz=$pose_hz action_interval_ms=$action_ms seconds=$seconds" \
  "warmup_s=$warmup interval_s=$interval port=$port server_pid=$pid" >&2
"$load" --port "$port" --register --quiet --reconnect --players "$players" --pose-hz "$pose_hz" \
  --action-interval-ms "$action_ms" --duration-s "$seconds" --server-pid "$pid" \
  >"$tmp/load.txt" 2>"$tmp/load.err" &
loadpid=$!

# Samples: seconds since start, VmRSS kB, RssAnon kB, heap kB, tick p99 ms.
t0=$(date +%s.%N)
: >"$tmp/samples.txt"
while kill -0 "$loadpid" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || fail "the server died under load"
  st="$(status || true)"
  rss="$(proc_kb VmRSS)"
  anon="$(proc_kb RssAnon)"
  if [ -n "$st" ] && [ -n "$rss" ]; then
    heap="$(echo "$st" | field mem_bytes)"
    seal="$(echo "$st" | field seal_p99_us)"
    publish="$(echo "$st" | field publish_p99_us)"
    now=$(date +%s.%N)
    awk -v t0="$t0" -v t="$now" -v r="$rss" -v a="$anon" -v h="$heap" -v s="$seal" -v p="$publish" \
      'BEGIN { printf "%.1f %d %d %d %.3f\n", t - t0, r, a, h / 1024, (s + p) / 1000 }' \
      >>"$tmp/samples.txt"
  fi
  sleep "$interval"
done
loadrc=0
wait "$loadpid" || loadrc=$?
loadpid=""
st="$(status || true)"
store_error="$(echo "$st" | field store_error)"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "the server exited with $rc after SIGTERM"
[ "$loadrc" -eq 0 ] || fail "otherworld-load exited with $loadrc (no player joined?)"
[ "$store_error" = "OK" ] || fail "the server reports store_error=${store_error:-(no /status answer)}"

# The load generator's own figures, prefixed, then the fits.
grep -E '^(players_joined|actions_per_sec|applied_p99_ms|durable_p99_ms|errors|errors_rate|disconnects|reconnects|server_cpu_pct)=' \
  "$tmp/load.txt" | sed 's/^/load_/'
awk -v warmup="$warmup" -v growth_max="$growth_max_kb" -v slope_max="$slope_max_kb" '
  function fit(col,   i, n, sx, sy, sxx, sxy, x) {
    n = 0; sx = sy = sxx = sxy = 0
    for (i = 1; i <= N; i++) if (T[i] >= warmup) {
      x = T[i] / 60; n++; sx += x; sy += V[col, i]; sxx += x * x; sxy += x * V[col, i]
    }
    if (n < 2 || n * sxx - sx * sx == 0) return 0
    return (n * sxy - sx * sy) / (n * sxx - sx * sx)
  }
  { N++; T[N] = $1; for (c = 2; c <= 5; c++) V[c, N] = $c }
  END {
    first = 0; for (i = 1; i <= N; i++) if (T[i] >= warmup) { first = i; break }
    if (!first || N - first < 1) { print "soak: too few samples after the warm-up" > "/dev/stderr"; exit 3 }
    span_min = (T[N] - T[first]) / 60
    printf "samples=%d\nmeasured_minutes=%.2f\n", N - first + 1, span_min
    printf "rss_start_kb=%d\nrss_end_kb=%d\n", V[2, first], V[2, N]
    printf "rss_anon_start_kb=%d\nrss_anon_end_kb=%d\n", V[3, first], V[3, N]
    printf "heap_start_kb=%d\nheap_end_kb=%d\n", V[4, first], V[4, N]
    printf "tick_p99_start_ms=%.3f\ntick_p99_end_ms=%.3f\n", V[5, first], V[5, N]
    rs = fit(2); as = fit(3); hs = fit(4); ts = fit(5)
    printf "rss_slope_kb_per_min=%.1f\nrss_anon_slope_kb_per_min=%.1f\n", rs, as
    printf "heap_slope_kb_per_min=%.1f\ntick_p99_slope_ms_per_min=%.4f\n", hs, ts
    growth = V[3, N] - V[3, first]
    bound = growth_max != "" ? growth_max : 65536 + 1024 * span_min
    printf "rss_anon_growth_kb=%d\nrss_anon_growth_bound_kb=%d\n", growth, bound
    bad = 0
    if (growth > bound) { print "soak: FAIL: anonymous RSS grew " growth " kB, bound " bound " kB" > "/dev/stderr"; bad = 1 }
    if (span_min >= 5 && as > slope_max) {
      print "soak: FAIL: anonymous RSS slope " as " kB/min, bound " slope_max > "/dev/stderr"; bad = 1
    }
    exit bad
  }' "$tmp/samples.txt" || { keep=1; echo "soak: samples in $tmp/samples.txt" >&2; exit 1; }
echo "soak: passed" >&2
