#!/usr/bin/env bash
# The real server binary: seeds an empty store, exits 0 on SIGTERM and SIGINT after committing,
# recovers the same world on restart, and refuses bad settings and bad content with a clear message
# and exit code 2, without touching the store.
set -euo pipefail
bin="$1"
src="$2"
dir="$(mktemp -d "${TMPDIR:-/tmp}/ow-lifecycle-XXXXXX")"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; echo "--- log"; cat "$dir/log" 2>/dev/null || true; exit 1; }

start() { # start the server in the background and wait for its "running" line
  # OW_SERVER_WRAPPER (tests/integration/valgrind.sh) runs it under a tool such as valgrind.
  # shellcheck disable=SC2086
  ${OW_SERVER_WRAPPER:-} "$bin" --data_dir "$dir/data" --bind 127.0.0.1 --port 0 --shutdown_notice_s 0.1 "$@" 2>"$dir/log" &
  pid=$!
  for _ in $(seq 1 1200); do
    grep -q "event=listening" "$dir/log" && return 0
    kill -0 "$pid" 2>/dev/null || fail "server exited before running"
    sleep 0.05
  done
  fail "server did not report running"
}

stop() { # stop with signal $1 and require exit 0
  kill -"$1" "$pid"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "exit code $rc after SIG$1"
  grep -q "event=stopped" "$dir/log" || fail "no stopped line after SIG$1"
}

start
grep -q "event=recovered .*seeded=1 entities=41" "$dir/log" || fail "first start did not seed 41 entities"
port="$(grep -o 'url=ws://127.0.0.1:[0-9]*' "$dir/log" | grep -o '[0-9]*$')"
[ -n "$port" ] || fail "no port in the listening line"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
status="$(timeout 5 cat <&3 || true)"
exec 3>&-
echo "$status" | grep -q '"entities":41' || fail "GET /status: $status"
sleep 0.3
# A second server on the same port refuses to start, with a clear message.
rc=0; "$bin" --data_dir "$dir/data2" --bind 127.0.0.1 --port "$port" 2>"$dir/log2" || rc=$?
[ "$rc" -eq 1 ] && grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$dir/log2" \
  || { cat "$dir/log2"; fail "port in use: rc=$rc"; }
stop TERM
start --tick_hz=30
grep -q "event=recovered .*seeded=0 entities=41 .*bytes_per_entity=" "$dir/log" || fail "restart did not recover 41 entities"
grep -q "seconds=" "$dir/log" || fail "recovery time not printed"
stop INT
# The same store named by its URI (the store setting wins over data_dir).
start --store "lmdb:$dir/data" --data_dir "$dir/unused"
grep -q "event=recovered store=lmdb:$dir/data seeded=0 entities=41" "$dir/log" || fail "--store lmdb:DIR"
[ ! -e "$dir/unused" ] || fail "data_dir was opened although store names another directory"
stop TERM

# Bad settings and bad content: exit 2, a message naming the problem, the store untouched.
before="$(md5sum "$dir/data/data.mdb")"
rc=0; "$bin" --data_dir "$dir/data" --tick_hz=0 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] && grep -q "tick_hz: 0 is outside" "$dir/log" || fail "bad tick_hz: rc=$rc"
rc=0; "$bin" --data_dir "$dir/data" --nonsense=1 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] && grep -q "unknown setting 'nonsense'" "$dir/log" || fail "unknown setting: rc=$rc"
printf '{"format":1,"types":[{"name":"x","kind":"rocket"}]}' >"$dir/bad.json"
rc=0; "$bin" --data_dir "$dir/data" --content "$dir/bad.json" 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] && grep -q "types\[0\].kind: unknown kind 'rocket'" "$dir/log" || fail "bad content: rc=$rc"
printf 'tick_hz = 60\ncolour = red\n' >"$dir/bad.conf"
rc=0; "$bin" --data_dir "$dir/data" --config "$dir/bad.conf" 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] && grep -q "bad.conf:2: unknown setting 'colour'" "$dir/log" || fail "bad config file: rc=$rc"
# The store is named by a URI; an unknown scheme is refused before anything is opened.
rc=0; timeout 10 "$bin" --store "foundationdb:/etc/fdb.cluster" 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] && grep -q "unknown scheme 'foundationdb'" "$dir/log" || fail "unknown store scheme: rc=$rc"
# server_name travels in WELCOME as a string of at most 255 bytes: a longer one is refused at start
# (it used to pass and abort the server at the first HELLO).
long="$(printf 'n%.0s' $(seq 256))"
rc=0; timeout 10 "$bin" --data_dir "$dir/data" --server_name "$long" 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] && grep -q "server_name: 256 bytes is longer than the 255 bytes allowed" "$dir/log" \
  || fail "256-byte server_name: rc=$rc"
[ "$before" = "$(md5sum "$dir/data/data.mdb")" ] || fail "a refused start changed the store"
"$bin" --help >"$dir/help" || fail "--help did not exit 0"
grep -q "OW_DATA_DIR" "$dir/help" || fail "--help does not list the settings"
echo "server_lifecycle: 1 passed, 0 failed"
