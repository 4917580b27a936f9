#!/usr/bin/env bash
# scripts/install.sh staged into a temporary root (--destdir): the binaries, content, docs, the
# config file and the systemd unit land in Debian's places; the unit passes systemd-analyze verify
# inside that root (its ExecStart exists there); the installed binary starts with the installed
# config (its paths moved into the test's directory) and serves; a second install leaves an edited
# config alone. Usage: install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$1"
build="$2"
stage="$(mktemp -d "${TMPDIR:-/tmp}/ow-install-XXXXXX")"
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$stage"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

bash "$src/scripts/install.sh" --no-build --build "$build" --destdir "$stage" >"$stage/out.txt" ||
  fail "install.sh failed: $(cat "$stage/out.txt")"
p="$stage/usr/local"
for f in bin/otherworld bin/otherworld-load share/otherworld/default.json \
         share/otherworld/otherworld.conf.example share/doc/otherworld/operations.md \
         lib/systemd/system/otherworld.service; do
  [ -e "$p/$f" ] || fail "not installed: $f"
done
conf="$stage/etc/otherworld/otherworld.conf"
[ -e "$conf" ] || fail "no config in /etc/otherworld"
unit="$p/lib/systemd/system/otherworld.service"
grep -qx "ExecStart=/usr/local/bin/otherworld --config /etc/otherworld/otherworld.conf" "$unit" ||
  fail "unexpected ExecStart: $(grep ExecStart "$unit")"
grep -qx "Type=notify" "$unit" && grep -q "^WatchdogSec=" "$unit" || fail "unit has no notify/watchdog"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --man=no --recursive-errors=no --root="$stage" \
    /usr/local/lib/systemd/system/otherworld.service || fail "systemd-analyze verify refused the unit"
fi

# The installed binary with the installed config, its paths moved under the stage.
sed -e "s|/var/lib/otherworld|$stage/var|g" -e "s|^content = /usr/local|content = $p|" \
  -e "s|^port = 7480|port = 0|" -e "s|^bind = 0.0.0.0|bind = 127.0.0.1|" "$conf" >"$stage/test.conf"
mkdir -p "$stage/var" # what the unit's StateDirectory= creates
"$p/bin/otherworld" --config "$stage/test.conf" 2>"$stage/log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q "event=listening" "$stage/log" && break
  kill -0 "$pid" 2>/dev/null || fail "installed server exited: $(tail -3 "$stage/log")"
  sleep 0.05
done
grep -q "event=listening" "$stage/log" || fail "installed server did not listen"
grep -q "event=backups dir=$stage/var/backups every_s=3600 keep=48" "$stage/log" ||
  fail "the installed config's backup schedule is not in effect"
kill -TERM "$pid"
wait "$pid" || fail "installed server exit code $?"
pid=""

# A second install keeps an operator's edits.
echo "server_name = edited" >>"$conf"
bash "$src/scripts/install.sh" --no-build --build "$build" --destdir "$stage" >"$stage/out2.txt"
grep -q "server_name = edited" "$conf" || fail "a second install overwrote the config"
grep -q "left as it is" "$stage/out2.txt" || fail "the second install did not say it kept the config"
echo "install: staged, unit verified, installed server served, config kept"
