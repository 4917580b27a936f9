#!/usr/bin/env bash
# The real server with store = postgres (run under tests/pg/pg_env.sh): the first start creates the
# schema and seeds the world, SIGTERM exits 0 after committing, a restart recovers the same world
# from PostgreSQL, a password in the URI is never shown, backups are refused (pg_dump's job), a
# store of another schema version and an unreachable server are refused with a clear message, both
# URI forms work, and --help names the PostgreSQL forms.
set -euo pipefail
bin="$1"
: "${OW_TEST_PG:?run under tests/pg/pg_env.sh}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/ow-pglife-XXXXXX")"
trap 'if [ -n "${pid:-}" ]; then kill -9 "$pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; echo "--- log"; cat "$dir/log" 2>/dev/null || true; exit 1; }
sql() { psql "$OW_TEST_PG" -v ON_ERROR_STOP=1 -qAtc "$1"; }

sql "CREATE SCHEMA life"
store="postgres:$OW_TEST_PG options=-csearch_path=life"

start() { # start the server in the background and wait for its "listening" line
  "$bin" --data_dir "$dir/unused" --bind 127.0.0.1 --port 0 --shutdown_notice_s 0.1 "$@" 2>"$dir/log" &
  pid=$!
  for _ in $(seq 1 1200); do
    grep -q "event=listening" "$dir/log" && return 0
    kill -0 "$pid" 2>/dev/null || fail "server exited before running"
    sleep 0.05
  done
  fail "server did not report running"
}

stop() { # stop with SIGTERM and require exit 0
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "exit code $rc after SIGTERM"
  grep -q "event=stopped" "$dir/log" || fail "no stopped line"
}

start --store "$store"
grep -q "event=recovered store=postgres:.* seeded=1 entities=41" "$dir/log" || fail "first start did not seed 41 entities"
[ ! -e "$dir/unused" ] || fail "data_dir was created although store names PostgreSQL"
[ "$(sql "SELECT value FROM life.ow_schema WHERE name = 'format'")" = 1 ] || fail "no schema version row"
n="$(sql "SELECT count(*) FROM life.ow_kv WHERE substring(k from 1 for 1) = 'R'::bytea")"
[ "$n" -eq 41 ] || fail "ow_kv holds $n entity rows, not 41"
stop

# A restart recovers the world from PostgreSQL, here named by a URL.
port="$(echo "$OW_TEST_PG" | grep -o 'port=[0-9]*' | cut -d= -f2)"
start --store "postgresql://postgres@127.0.0.1:$port/postgres?options=-csearch_path%3Dlife"
grep -q "event=recovered store=postgresql://.* seeded=0 entities=41" "$dir/log" || fail "restart did not recover 41 entities"
frame="$(sql "SELECT max(seq) FROM life.ow_writers")"
stop
[ "$(sql "SELECT count(*) FROM life.ow_writers")" -eq 0 ] || fail "a clean stop left its writer row"

# A password in the store URI is never shown: the log and /status have "***" in its place (the
# throwaway server trusts loopback, so it never asks for the password and libpq never sends it).
start --store "$store password=pw-sekrit-42"
grep -qF "password=*** seeded=0 entities=41" "$dir/log" || fail "the recovered line does not mask the password"
wsport="$(grep -o 'url=ws://127.0.0.1:[0-9]*' "$dir/log" | grep -o '[0-9]*$')"
exec 3<>"/dev/tcp/127.0.0.1/$wsport"
printf 'GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
status="$(timeout 5 cat <&3 || true)"
exec 3>&-
echo "$status" | grep -q '"entities":41' || fail "GET /status: $status"
stop
! grep -q "sekrit" "$dir/log" || fail "the log shows the store's password"
! echo "$status" | grep -q "sekrit" || fail "/status shows the store's password"
# A mistyped scheme is refused without repeating the password either.
rc=0; "$bin" --store "postgress://ow:pw-sekrit-42@127.0.0.1/w" 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] || fail "unknown scheme: exit $rc, not 2"
grep -qF "postgress://ow:***@127.0.0.1/w" "$dir/log" && ! grep -q sekrit "$dir/log" \
  || fail "unknown scheme: the message shows the password"

# Backups of a PostgreSQL store are pg_dump's: --backup and scheduled backups are refused, with a
# message that says so, and nothing is made (the read-only open leaves no writer row behind).
rc=0; timeout 20 "$bin" --store "$store" --backup "$dir/bk" 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] || fail "--backup on postgres: exit $rc, not 2"
grep -q "the postgres store cannot be copied by otherworld.*pg_dump" "$dir/log" || fail "--backup on postgres: no clear message"
[ ! -e "$dir/bk" ] && [ ! -e "$dir/bk.tmp" ] || fail "--backup on postgres made a directory"
rc=0; timeout 20 "$bin" --store "$store" --backup_every_s 60 --backup_dir "$dir/bks" 2>"$dir/log" || rc=$?
[ "$rc" -eq 2 ] || fail "backup_every_s on postgres: exit $rc, not 2"
grep -q "backup_every_s: the postgres store cannot be copied.*pg_dump" "$dir/log" || fail "backup_every_s on postgres: no clear message"
[ "$(sql "SELECT count(*) FROM life.ow_writers")" -eq 0 ] || fail "a refused start left a writer row"

# Another schema version: refused, exit 1, the message names both versions, nothing touched.
sql "UPDATE life.ow_schema SET value = 7 WHERE name = 'format'"
before="$(sql "SELECT md5(string_agg(k || v, '' ORDER BY k)) FROM life.ow_kv")"
rc=0; timeout 20 "$bin" --store "$store" 2>"$dir/log" || rc=$?
[ "$rc" -eq 1 ] || fail "schema version 7: exit $rc, not 1"
grep -q "schema version 7; this build reads version 1" "$dir/log" || fail "schema version 7: no clear message"
[ "$(sql "SELECT md5(string_agg(k || v, '' ORDER BY k)) FROM life.ow_kv")" = "$before" ] || fail "the refused store was changed"
sql "UPDATE life.ow_schema SET value = 1 WHERE name = 'format'"

# No server: refused at start with libpq's reason, exit 1.
rc=0; timeout 20 "$bin" --store "postgres:host=127.0.0.1 port=1 connect_timeout=2" 2>"$dir/log" || rc=$?
[ "$rc" -eq 1 ] || fail "unreachable server: exit $rc, not 1"
grep -q "Connection refused" "$dir/log" || fail "unreachable server: no reason given"

"$bin" --help >"$dir/help" || fail "--help did not exit 0"
grep -q "postgres:CONNINFO" "$dir/help" || fail "--help does not name the PostgreSQL store"
echo "pg_lifecycle: ok (frame writer seq $frame)"
