#!/usr/bin/env bash
# Integration test of the Godot client (clients/godot/addons/otherworld) against the real server,
# with a second player written on the C client library (tests/godot/companion.c).
#
#   bash tests/godot/run.sh
#
# Environment:
#   OW_SERVER_BIN      the server binary (default: build/otherworld of this checkout)
#   OW_COMPANION_BIN   the companion (default: otherworld-godot-companion beside the server binary;
#                      CMake target otherworld-godot-companion, tests/godot/CMakeLists.txt)
#   OW_GODOT_BIN       Godot 3.2 headless (default: godot3-server; installed with apt-get if missing)
#   OW_GODOT_TIMEOUT_S deadline of each Godot run (default 90)
#   OW_GODOT_KEEP=1    keep the temporary directory (logs, data, project) for inspection
#
# Steps: run the codec self-test (test_codec.gd); start the server on a fresh data directory and a
# free port; start the companion and wait for its READY line (it built a wall); run the scenario
# (test_integration.gd); run the example scene (clients/godot/example) in its --auto mode; require
# exit code 0 AND the exact success line from each Godot run (a GDScript parse error still exits
# 0, a runtime error hangs: hence timeout + success line); stop the companion and the server with
# SIGTERM and require exit code 0 from both.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
server="${OW_SERVER_BIN:-$root/build/otherworld}"
companion="${OW_COMPANION_BIN:-$(dirname "$server")/otherworld-godot-companion}"
godot="${OW_GODOT_BIN:-godot3-server}"
limit="${OW_GODOT_TIMEOUT_S:-90}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ow-godot-XXXXXX")"
spid=""
cpid=""

cleanup() {
  # Only the processes this script started, by pid.
  if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then kill -TERM "$cpid" 2>/dev/null || true; fi
  if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then kill -TERM "$spid" 2>/dev/null || true; fi
  for p in $cpid $spid; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ "${OW_GODOT_KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in godot_codec.log godot.log example.log companion.out companion.err; do
    [ -s "$tmp/$f" ] && { echo "--- $f"; cat "$tmp/$f"; }
  done
  [ -s "$tmp/server.log" ] && { echo "--- server.log (last 40 lines)"; tail -n 40 "$tmp/server.log"; }
  exit 1
}

# ---- prerequisites ---------------------------------------------------------------------------
if ! command -v "$godot" >/dev/null 2>&1; then
  if [ "$godot" != godot3-server ]; then fail "OW_GODOT_BIN=$godot not found"; fi
  [ "$(id -u)" = 0 ] || fail "godot3-server is missing and installing it needs root (apt-get install -y godot3-server)"
  echo "installing godot3-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y godot3-server >"$tmp/apt.log" 2>&1 ||
    { apt-get update >>"$tmp/apt.log" 2>&1 && apt-get install -y godot3-server >>"$tmp/apt.log" 2>&1; } ||
    { cat "$tmp/apt.log"; fail "apt-get install -y godot3-server failed"; }
fi
[ -x "$server" ] || fail "server binary $server not found (set OW_SERVER_BIN)"
[ -x "$companion" ] || fail "companion $companion not found (build the CMake target otherworld-godot-companion or set OW_COMPANION_BIN)"

# ---- the Godot project: the test scripts plus a copy of the addon ------------------------------
mkdir -p "$tmp/project/addons" "$tmp/home/.config" "$tmp/home/.cache" "$tmp/example"
cp -R "$here/project/." "$tmp/project/"
cp -R "$root/clients/godot/addons/otherworld" "$tmp/project/addons/otherworld"
# The example project (clients/godot: project.godot, example/, addons/), run headless in --auto.
cp -R "$root/clients/godot/project.godot" "$root/clients/godot/example" "$root/clients/godot/addons" "$tmp/example/"
# Godot's user data directories (created up front: Godot prints an error when it makes them).
mkdir -p "$tmp/home/.local/share/godot/app_userdata/otherworld-godot-test" \
  "$tmp/home/.local/share/godot/app_userdata/otherworld-example"

# Godot with its user data, logs and settings in the temporary HOME. Godot takes its locale from
# LANG itself (it does not need the glibc locale to be generated); C.UTF-8 makes it print
# "Invalid locale 'C'", so en_US.UTF-8 is used. LC_ALL would override LANG: unset it.
run_godot() { # run_godot PROJECT LOG [ARGS...] -> exit code of Godot (124 on timeout)
  local project="$1" log="$2" rc=0
  shift 2
  env -u LC_ALL HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" \
    XDG_DATA_HOME="$tmp/home/.local/share" XDG_CACHE_HOME="$tmp/home/.cache" LANG=en_US.UTF-8 \
    OW_TEST_TIMEOUT_S="$((limit > 20 ? limit - 10 : limit * 3 / 4))" \
    timeout -k 5 "$limit" "$godot" --no-window --path "$project" "$@" >"$tmp/$log" 2>&1 || rc=$?
  return $rc
}

# ---- codec self-test (no server) ---------------------------------------------------------------
rc=0
run_godot "$tmp/project" godot_codec.log -s test_codec.gd || rc=$?
[ "$rc" -eq 0 ] || fail "codec test: Godot exit code $rc"
grep -qx "OTHERWORLD_GODOT_CODEC_OK" "$tmp/godot_codec.log" || fail "codec test: no success line"
grep "^codec:" "$tmp/godot_codec.log"

# ---- server ------------------------------------------------------------------------------------
"$server" --data_dir "$tmp/data" --bind 127.0.0.1 --port 0 --shutdown_notice_s 0.2 2>"$tmp/server.log" &
spid=$!
port=""
for _ in $(seq 1 200); do
  port="$(grep -o 'event=listening url=ws://127\.0\.0\.1:[0-9]*/ws' "$tmp/server.log" 2>/dev/null |
    head -n 1 | sed 's/.*:\([0-9]*\)\/ws$/\1/' || true)"
  [ -n "$port" ] && break
  kill -0 "$spid" 2>/dev/null || fail "the server exited before listening"
  sleep 0.05
done
[ -n "$port" ] || fail "the server did not report event=listening"
echo "server: pid $spid, ws://127.0.0.1:$port/ws"

# ---- companion (C client library) ---------------------------------------------------------------
"$companion" 127.0.0.1 "$port" "$((limit + 30))" >"$tmp/companion.out" 2>"$tmp/companion.err" &
cpid=$!
ready=""
for _ in $(seq 1 400); do
  ready="$(grep -m1 '^COMPANION_READY ' "$tmp/companion.out" || true)"
  [ -n "$ready" ] && break
  kill -0 "$cpid" 2>/dev/null || fail "the companion exited before READY"
  sleep 0.05
done
[ -n "$ready" ] || fail "the companion did not get ready in 20 s"
echo "companion: $ready"
field() { echo "$ready" | grep -o "$1=[0-9]*" | cut -d= -f2; }
export OW_URL="ws://127.0.0.1:$port/ws"
export OW_COMPANION_ACCOUNT="$(field account)"
export OW_COMPANION_AVATAR="$(field avatar)"
export OW_COMPANION_WALL="$(field wall)"

# ---- the Godot client ----------------------------------------------------------------------------
rc=0
run_godot "$tmp/project" godot.log -s test_integration.gd || rc=$?
cat "$tmp/godot.log"
[ "$rc" -eq 0 ] || fail "integration test: Godot exit code $rc"
grep -qx "OTHERWORLD_GODOT_OK" "$tmp/godot.log" || fail "integration test: no success line"
grep -q "^COMPANION_SAW " "$tmp/companion.out" || fail "the companion did not report the Godot player"

# ---- the example scene (clients/godot/example), headless, playing by itself ----------------------
rc=0
OW_EXAMPLE_URL="$OW_URL" OW_EXAMPLE_AUTO=1 OW_EXAMPLE_USER="example_$$" \
  run_godot "$tmp/example" example.log || rc=$?
grep "^example:" "$tmp/example.log" || true
[ "$rc" -eq 0 ] || fail "example: Godot exit code $rc"
grep -qx "OTHERWORLD_EXAMPLE_OK" "$tmp/example.log" || fail "example: no success line"

# ---- stop everything -------------------------------------------------------------------------------
kill -0 "$cpid" 2>/dev/null || fail "the companion died during the test"
kill -TERM "$cpid"
rc=0; wait "$cpid" || rc=$?
cpid=""
[ "$rc" -eq 0 ] || fail "companion exit code $rc after SIGTERM"
kill -TERM "$spid"
rc=0; wait "$spid" || rc=$?
spid=""
[ "$rc" -eq 0 ] || fail "server exit code $rc after SIGTERM"
grep -q "event=stopped" "$tmp/server.log" || fail "no event=stopped line from the server"
cat "$tmp/companion.out"
echo "godot_client: 1 passed, 0 failed"
