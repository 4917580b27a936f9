#!/usr/bin/env bash
# Hot backups of the real server while players play: scheduled backups appear and are pruned to
# backup_keep, `otherworld --backup` beside the running server makes a verified copy, a restore
# into a new data directory starts a server that recovers exactly the backup's frame, and bad
# requests (existing destination, restore over a world, a damaged manifest) are refused with a
# message and exit 1 without changing anything.
set -euo pipefail
bin="$1"
load="$2"
dir="$(mktemp -d "${TMPDIR:-/tmp}/ow-backup-XXXXXX")"
pid=""
loadpid=""
cleanup() {
  [ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null || true
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log"; tail -20 "$dir/log" 2>/dev/null || true; exit 1; }

start() { # start (data dir, log, extra args...) and wait for its listening line
  local data="$1" log="$2"
  shift 2
  "$bin" --data_dir "$data" --bind 127.0.0.1 --port 0 --shutdown_notice_s 0.1 --pwhash_ops 1 \
    --pwhash_mem_kb 64 --pwhash_per_addr 64 "$@" 2>"$log" &
  pid=$!
  for _ in $(seq 1 1200); do
    grep -q "event=listening" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || fail "server exited before listening"
    sleep 0.05
  done
  fail "server did not listen"
}

start "$dir/data" "$dir/log" --backup_dir "$dir/sched" --backup_every_s 0.5 --backup_keep 2
port="$(grep -o 'url=ws://127.0.0.1:[0-9]*' "$dir/log" | grep -o '[0-9]*$')"
"$load" --port "$port" --register --quiet --players 20 --pose-hz 20 --action-interval-ms 50 \
  --duration-s 6 >"$dir/load.txt" 2>"$dir/load.err" &
loadpid=$!
sleep 2

# On demand, beside the running server (LMDB readers do not stop its writer).
"$bin" --data_dir "$dir/data" --backup "$dir/b1" >"$dir/b1.txt" 2>"$dir/b1.err" ||
  fail "--backup beside the server: $(cat "$dir/b1.err")"
grep -q '^backup=.* frame=[0-9]* ' "$dir/b1.txt" || fail "no backup line: $(cat "$dir/b1.txt")"
sleep 1
"$bin" --data_dir "$dir/data" --backup "$dir/b2" >"$dir/b2.txt" 2>"$dir/b2.err" ||
  fail "second --backup: $(cat "$dir/b2.err")"
f1="$(grep -o ' frame=[0-9]*' "$dir/b1.txt" | grep -o '[0-9]*')"
f2="$(grep -o ' frame=[0-9]*' "$dir/b2.txt" | grep -o '[0-9]*')"
[ "$f2" -gt "$f1" ] || fail "the second backup (frame $f2) is not later than the first ($f1): no play?"

# An existing destination is refused and left alone.
if "$bin" --data_dir "$dir/data" --backup "$dir/b1" 2>"$dir/again.err" >/dev/null; then
  fail "--backup into an existing backup succeeded"
fi
grep -q "already exists" "$dir/again.err" || fail "no clear message: $(cat "$dir/again.err")"
"$bin" --verify "$dir/b1" >/dev/null 2>&1 || fail "b1 no longer verifies after the refused backup"

wait "$loadpid" || fail "otherworld-load failed: $(tail -3 "$dir/load.err")"
loadpid=""
grep -q "^players_joined=20$" "$dir/load.txt" || fail "not every player joined: $(cat "$dir/load.txt")"

# Scheduled backups: made while the players played, pruned to backup_keep.
n="$(find "$dir/sched" -maxdepth 1 -name 'backup-*' ! -name '*.tmp' | wc -l)"
[ "$n" -eq 2 ] || fail "expected 2 scheduled backups kept, found $n"
made="$(grep -c "event=backup " "$dir/log" || true)"
[ "$made" -ge 3 ] || fail "expected at least 3 scheduled backups, the log shows $made"
for b in "$dir"/sched/backup-*; do
  "$bin" --verify "$b" >/dev/null 2>"$dir/v.err" || fail "scheduled $b: $(cat "$dir/v.err")"
done
kill -TERM "$pid"
wait "$pid" || fail "server exit code $? after SIGTERM"
pid=""

# Restore b2 into a new directory; a server on it recovers exactly frame f2.
"$bin" --data_dir "$dir/restored" --restore "$dir/b2" >"$dir/r.txt" 2>"$dir/r.err" ||
  fail "--restore: $(cat "$dir/r.err")"
start "$dir/restored" "$dir/log2"
grep -q "event=recovered .* frame=$f2\b" "$dir/log2" || fail "restored server did not recover frame $f2: $(grep event=recovered "$dir/log2")"
kill -TERM "$pid"
wait "$pid" || fail "restored server exit code $?"
pid=""

# A restore never overwrites a world.
if "$bin" --data_dir "$dir/data" --restore "$dir/b1" 2>"$dir/over.err" >/dev/null; then
  fail "--restore over the live data directory succeeded"
fi
grep -q "never overwrites" "$dir/over.err" || fail "no clear message: $(cat "$dir/over.err")"

# A damaged manifest: verify and restore refuse it.
sed -i 's/"frame": [0-9]*/"frame": 1/' "$dir/b1/manifest.json"
if "$bin" --verify "$dir/b1" 2>"$dir/bad.err" >/dev/null; then fail "a damaged backup verified"; fi
grep -q "differs from its manifest" "$dir/bad.err" || fail "no clear message: $(cat "$dir/bad.err")"
if "$bin" --data_dir "$dir/fresh" --restore "$dir/b1" 2>/dev/null >/dev/null; then
  fail "a damaged backup was restored"
fi
[ ! -e "$dir/fresh/data.mdb" ] || fail "a refused restore left a store behind"
echo "backup: frames $f1 and $f2 backed up beside the running server, $made scheduled, restore ok"
