# Shared by the server benchmarks (bench/sessions, bench/scaling); sourced, not run. It starts the
# real server on a free port in a temporary directory, reads /status, and cleans up on exit.
# The caller sets `build` (the build directory) before sourcing; it gets `server`, `load`, `tmp`,
# and after start_server, `pid` and `port`. OW_BENCH_KEEP=1 keeps the temporary directory (logs).

server="$build/otherworld"
load="$build/otherworld-load"
[ -x "$server" ] && [ -x "$load" ] || { echo "build first: $server and $load" >&2; exit 2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ow-bench-XXXXXX")"
pid=""
port=""
# Processes a benchmark starts beside the server (load generators); killed by id on exit.
bench_pids=()
bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "${OW_BENCH_KEEP:-}" ]; then echo "kept: $tmp" >&2; else rm -rf "$tmp"; fi
}
trap bench_cleanup EXIT

# Many connections need many descriptors, on both ends: the soft limit goes up to the hard one
# (raising the hard one needs CAP_SYS_RESOURCE, which a container may not have). Prints the limit.
raise_nofile() {
  ulimit -Hn 1048576 2>/dev/null || true
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  ulimit -n
}

# Cheap password hashing for the benchmarks' thousands of accounts: each registration and login
# costs one argon2id hash on the thread pool, which is not what these benchmarks measure.
fast_pwhash=(--pwhash_ops 1 --pwhash_mem_kb 64)
# Every simulated player comes from this machine: start_server lifts the per-address limits meant
# for the Internet (bench/local.conf).
local_limits=(--config "$(dirname "${BASH_SOURCE[0]}")/local.conf")

# Starts a server on a free port with the given extra settings (after --bind ADDR, if first);
# sets pid and port. The data directory is fresh each time.
start_server() {
  local bind=127.0.0.1
  if [ "${1:-}" = "--bind" ]; then bind="$2"; shift 2; fi
  # The old log goes first: the new server's shell truncates it only after the fork, and until
  # then the loop below could read the previous server's port.
  rm -rf "$tmp/data" "$tmp/server.log"
  "$server" --data_dir "$tmp/data" --bind "$bind" --port 0 --shutdown_notice_s 0 \
    "${local_limits[@]}" "$@" 2>"$tmp/server.log" &
  pid=$!
  local _
  for _ in $(seq 1 400); do
    port="$(grep -so 'url=ws://[0-9.]*:[0-9]*' "$tmp/server.log" | grep -o '[0-9]*$' || true)"
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2 2>/dev/null; exit 1; }
    sleep 0.05
  done
  echo "server did not start" >&2
  exit 1
}

stop_server() {
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  [ "$rc" -eq 0 ] || { echo "server exited with $rc" >&2; tail -20 "$tmp/server.log" >&2; exit 1; }
}

# GET /status as one line of JSON.
status() {
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
  timeout 10 cat <&3 | tail -n 1
  exec 3>&-
}
# A numeric field of the /status JSON on stdin.
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
# The server's resident set, KiB.
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
# A key's value in a key=value file.
kv() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
