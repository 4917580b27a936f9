#!/usr/bin/env bash
# bench/room: the real server and the real load generator (otherworld-load, on the C client
# library) over loopback WebSocket, in three scenes:
#   room    100 VR players in one instance: pose 60 Hz, one action every 2 s each
#   spread  1,000 players spread over regions, none in another's area of interest
#   idle    10,000 idle sessions (connected and logged in, outside the world, sending nothing):
#           memory per session. Joined players cost more (a view, a pose); the room scene
#           covers them, and an instance holds max_players of them (100 by default)
# It prints key=value figures per scene, prefixed with the scene name. Not a timed test: the
# --quick mode (ctest bench_room_quick) runs small versions so that the script cannot rot.
#
# usage: bench/room.sh [--quick] [--build DIR] [--duration S]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../build"
quick=0
duration=30
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; duration=4 ;;
    --build) build="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--build DIR] [--duration S]" >&2; exit 2 ;;
  esac
  shift
done
server="$build/otherworld"
load="$build/otherworld-load"
[ -x "$server" ] && [ -x "$load" ] || { echo "build first: $server and $load" >&2; exit 2; }

# Many connections need many descriptors, on both ends.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ow-room-XXXXXX")"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Starts a server on a free port with the given extra settings; sets pid and port.
start_server() {
  rm -rf "$tmp/data"
  "$server" --data_dir "$tmp/data" --bind 127.0.0.1 --port 0 --shutdown_notice_s 0 \
    "$@" 2>"$tmp/server.log" &
  pid=$!
  for _ in $(seq 1 200); do
    port="$(grep -o 'url=ws://127.0.0.1:[0-9]*' "$tmp/server.log" | grep -o '[0-9]*$' || true)"
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "server did not start" >&2
  exit 1
}

# GET /status as one line of JSON.
status() {
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
  timeout 5 cat <&3 | tail -n 1
  exec 3>&-
}
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

stop_server() {
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  [ "$rc" -eq 0 ] || { echo "server exited with $rc" >&2; cat "$tmp/server.log" >&2; exit 1; }
}

# Runs the load generator and prints its figures and the server's loop figures, prefixed.
scene() {
  local name="$1"
  shift
  "$load" --port "$port" --register --quiet --server-pid "$pid" "$@" >"$tmp/$name.txt"
  local st
  st="$(status)"
  sed "s/^/${name}_/" "$tmp/$name.txt"
  local seal publish poses commit
  seal="$(echo "$st" | field seal_p99_us)"
  publish="$(echo "$st" | field publish_p99_us)"
  poses="$(echo "$st" | field poses_p99_us)"
  commit="$(echo "$st" | field commit_p99_us)"
  # One tick's loop work is sealing the frame plus building every client's snapshot; the p99 of
  # their sum is at most the sum of their p99s, which is what is reported.
  awk -v n="$name" -v s="$seal" -v p="$publish" -v q="$poses" -v c="$commit" 'BEGIN {
    printf "%s_tick_p99_ms=%.3f\n%s_seal_p99_ms=%.3f\n%s_snapshot_publish_p99_ms=%.3f\n", n, (s + p) / 1000, n, s / 1000, n, p / 1000
    printf "%s_pose_publish_p99_ms=%.3f\n%s_server_commit_p99_ms=%.3f\n", n, q / 1000, n, c / 1000 }'
}

# Cheap password hashing for the benchmark's thousands of logins: the figures are about the
# realtime path, not about argon2id, which runs on the thread pool either way.
fast=(--pwhash_ops 1 --pwhash_mem_kb 64)
# Every simulated player comes from 127.0.0.1: lift the per-address limits meant for the Internet.
fast+=(--max_conns_per_addr 0 --pwhash_per_addr 100000 --pwhash_queue 100000 --login_fails_addr 100000)

if [ "$quick" = 1 ]; then room_players=20; spread_players=50; idle_players=200
else room_players=100; spread_players=1000; idle_players=10000; fi
[ -n "${OW_ROOM_IDLE:-}" ] && idle_players="$OW_ROOM_IDLE"

echo "machine_cores=$(nproc)"
echo "duration_s=$duration"

# 1. The VR room.
start_server "${fast[@]}" --max_players 1000
scene room --players "$room_players" --pose-hz 60 --action-interval-ms 2000 --duration-s "$duration"
stop_server

# 2. Spread over regions.
start_server "${fast[@]}" --max_players 100000 --action_rate 100
scene spread --players "$spread_players" --pose-hz 60 --action-interval-ms 2000 --duration-s "$duration" --spread
stop_server

# 3. Idle sessions: resident memory per connected, joined session, sampled while they are there.
start_server "${fast[@]}" --max_players 100000 --idle_s 3600
sleep 0.5
before="$(rss_kb)"
heap_before="$(status | field mem_bytes)"
"$load" --port "$port" --register --quiet --players "$idle_players" --pose-hz 0 \
  --action-interval-ms 0 --duration-s 5 --no-join >"$tmp/idle.txt" 2>"$tmp/idle.err" &
loadpid=$!
peak=0
heap_peak=0
joined=0
while kill -0 "$loadpid" 2>/dev/null; do
  st="$(status)"
  joined="$(echo "$st" | field connections)"
  r="$(rss_kb)"
  if [ "${joined:-0}" -ge "$idle_players" ] && [ "$r" -gt "$peak" ]; then
    peak="$r"
    heap_peak="$(echo "$st" | field mem_bytes)"
  fi
  sleep 0.5
done
wait "$loadpid"
sed "s/^/idle_/" "$tmp/idle.txt"; tail -3 "$tmp/idle.err" >&2
echo "idle_sessions=$idle_players"
echo "idle_server_rss_before_kb=$before"
echo "idle_server_rss_joined_kb=$peak"
# RSS growth includes what libwebsockets and glibc keep (per-thread arenas of the argon2 logins);
# the heap figure counts only otherworld's own allocations (ow_mem_used).
awk -v a="$peak" -v b="$before" -v ha="$heap_peak" -v hb="$heap_before" -v n="$idle_players" 'BEGIN {
  if (a > 0) {
    printf "idle_rss_bytes_per_session=%.0f\n", (a - b) * 1024 / n
    printf "idle_heap_bytes_per_session=%.0f\n", (ha - hb) / n
  } else print "idle_rss_bytes_per_session=n/a" }'
stop_server

echo "goal_room_tick_p99_ms=2 goal_room_applied_p99_ms=1 goal_room_durable_p99_ms=5 goal_room_down_kbps_per_client=256"
