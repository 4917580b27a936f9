#!/usr/bin/env bash
# soak: the real server under steady load for a while, watched for leaks (README.md beside this
# file). otherworld-load (clients/c/load.c) plays N VR players with poses and actions; every few
# seconds the script samples the server's resident memory (/proc/PID/status: VmRSS and RssAnon),
# its own heap (mem_bytes) and its tick time (seal_p99_us + publish_p99_us, as bench/scaling
# reports it) from the /status JSON endpoint. After a warm-up it fits a least-squares line to each
# and prints the slopes as key=value lines.
#
# It fails when the server dies, does not exit 0 on SIGTERM, reports a store error, or when memory
# keeps growing the way only a leak does. A leak raises the floor of a series for good; a burst
# (slow clients' send queues, up to send_limit_kb = 1 MiB each, which glibc keeps as RSS after they
# drain) raises it once. So the checks compare the lowest value of the last quarter of the measured
# samples with the lowest value of their first half:
#   RssAnon: growth > 64 MiB + players x 1 MiB (send queues) + 256 kB per measured minute;
#   heap (otherworld's own allocations, mem_bytes): growth > 16 MiB + 64 kB per measured minute.
# File-backed pages (the LMDB map, which grows with the frame log up to frame_log_keep) are in
# VmRSS but are not a leak, so the bound is on RssAnon. The least-squares slopes are printed, not
# asserted (one burst skews them); tick time is only reported: the machines are shared and noisy.
#
# usage: tests/soak/soak.sh [--build DIR] [--short | --minutes M | --seconds S] [--players N]
#                           [--pose-hz H] [--action-interval-ms A] [--interval S]
#                           [--rss-growth-max-kb K] [--heap-growth-max-kb K] [--keep]
#        tests/soak/soak.sh --analyze SAMPLES [--players N] [--seconds S]   (a kept samples.txt)
# modes: --short: the test suite's (ctest soak_short): 40 s, 50 players, poses at 20 Hz; with
#          OW_SOAK_MINUTES=M in the environment, M minutes at the defaults instead (long mode);
#        --minutes 10: the long mode (100 players, poses at 30 Hz, an action a second each);
#        --minutes 720: 12 hours. Later flags override earlier ones.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
local_conf="$here/../../bench/local.conf" # every player is on this machine: no per-address limits
build="$here/../../build"
seconds=600
players=100
pose_hz=30
action_ms=1000
interval=5
growth_max_kb=""
heap_max_kb=""
keep=0
analyze=""
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
    --heap-growth-max-kb) heap_max_kb="$2"; shift ;;
    --keep) keep=1 ;;
    --analyze) analyze="$2"; shift ;;
    -h|--help) usage ;;
    *) echo "soak: unknown argument $1" >&2; usage ;;
  esac
  shift
done
# The warm-up (logins, first snapshots, allocator arenas) is left out of the fits.
warmup=$((seconds / 5))
[ "$warmup" -lt 10 ] && warmup=10

# The fits and the leak checks over a samples file (columns: seconds, VmRSS kB, RssAnon kB, heap kB,
# tick p99 ms).
analyze() {
  awk -v warmup="$warmup" -v players="$players" -v rss_max="$growth_max_kb" -v heap_max="$heap_max_kb" '
    function fit(col,   i, n, sx, sy, sxx, sxy, x) {
      n = 0; sx = sy = sxx = sxy = 0
      for (i = first; i <= N; i++) {
        x = T[i] / 60; n++; sx += x; sy += V[col, i]; sxx += x * x; sxy += x * V[col, i]
      }
      if (n < 2 || n * sxx - sx * sx == 0) return 0
      return (n * sxy - sx * sy) / (n * sxx - sx * sx)
    }
    function low(col, a, b,   i, m) {
      m = V[col, a]; for (i = a; i <= b; i++) if (V[col, i] < m) m = V[col, i]
      return m
    }
    { N++; T[N] = $1; for (c = 2; c <= 5; c++) V[c, N] = $c }
    END {
      first = 0; for (i = 1; i <= N; i++) if (T[i] >= warmup) { first = i; break }
      if (!first || N - first < 3) { print "soak: too few samples after the warm-up" > "/dev/stderr"; exit 3 }
      n = N - first + 1
      span_min = (T[N] - T[first]) / 60
      half_end = first + int(n / 2) - 1; quarter = N - int(n / 4) + 1
      if (quarter > N) quarter = N
      printf "samples=%d\nmeasured_minutes=%.2f\n", n, span_min
      printf "rss_start_kb=%d\nrss_end_kb=%d\n", V[2, first], V[2, N]
      printf "rss_anon_start_kb=%d\nrss_anon_end_kb=%d\n", V[3, first], V[3, N]
      printf "heap_start_kb=%d\nheap_end_kb=%d\n", V[4, first], V[4, N]
      printf "tick_p99_start_ms=%.3f\ntick_p99_end_ms=%.3f\n", V[5, first], V[5, N]
      printf "rss_slope_kb_per_min=%.1f\nrss_anon_slope_kb_per_min=%.1f\n", fit(2), fit(3)
      printf "heap_slope_kb_per_min=%.1f\ntick_p99_slope_ms_per_min=%.4f\n", fit(4), fit(5)
      rg = low(3, quarter, N) - low(3, first, half_end)
      hg = low(4, quarter, N) - low(4, first, half_end)
      rb = rss_max != "" ? rss_max : 65536 + players * 1024 + 256 * span_min
      hb = heap_max != "" ? heap_max : 16384 + 64 * span_min
      printf "rss_anon_floor_growth_kb=%d\nrss_anon_floor_growth_bound_kb=%d\n", rg, rb
      printf "heap_floor_growth_kb=%d\nheap_floor_growth_bound_kb=%d\n", hg, hb
      bad = 0
      if (rg > rb) { print "soak: FAIL: anonymous RSS floor grew " rg " kB, bound " rb " kB" > "/dev/stderr"; bad = 1 }
      if (hg > hb) { print "soak: FAIL: heap floor grew " hg " kB, bound " hb " kB" > "/dev/stderr"; bad = 1 }
      exit bad
    }' "$1"
}

if [ -n "$analyze" ]; then
  analyze "$analyze"
  exit
fi

server="$build/otherworld"
load="$build/otherworld-load"
[ -x "$server" ] && [ -x "$load" ] || { echo "soak: build first: $server and $load" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

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
  --pwhash_ops 1 --pwhash_mem_kb 64 --max_players "$((players + 10))" \
  --config "$local_conf" 2>"$tmp/server.log" &
pid=$!
port=""
for _ in $(seq 1 600); do
  port="$(grep -o 'url=ws://127.0.0.1:[0-9]*' "$tmp/server.log" | grep -o '[0-9]*$' || true)"
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
  sleep 0.05
done
[ -n "$port" ] || fail "the server did not start"

# GET /status as one line of JSON (bash's /dev/tcp, as bench/scaling does).
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
analyze "$tmp/samples.txt" || { keep=1; echo "soak: samples in $tmp/samples.txt" >&2; exit 1; }
echo "soak: passed" >&2
