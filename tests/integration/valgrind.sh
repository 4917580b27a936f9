#!/usr/bin/env bash
# The server under valgrind (memcheck) while the integration tests drive it with real clients:
# the authorization matrix (accounts, actions, replication, admin operations, restarts) and the
# restart/resume test, then the lifecycle test (start, status, bad settings, signals). Passes when
# every test passes and valgrind reports no errors and no definitely lost bytes in any server run.
# usage: valgrind.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"
src="$2"
command -v valgrind >/dev/null || { echo "valgrind is not installed (scripts/deps.sh --test)"; exit 1; }
dir="$(mktemp -d "${TMPDIR:-/tmp}/ow-valgrind-XXXXXX")"
trap 'rm -rf "$dir"' EXIT
export OW_SERVER_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --log-file=$dir/vg.%p.log"
"$build/tests/integration/authz" "$build/otherworld"
"$build/tests/integration/restart_resume" "$build/otherworld"
bash "$src/tests/integration/server_lifecycle.sh" "$build/otherworld" "$src"
runs=0
for f in "$dir"/vg.*.log; do
  [ -e "$f" ] || continue
  runs=$((runs + 1))
  if [ -s "$f" ]; then echo "valgrind reported problems:"; cat "$f"; exit 1; fi
done
[ "$runs" -ge 5 ] || { echo "FAIL: expected at least 5 server runs under valgrind, saw $runs"; exit 1; }
echo "valgrind_server: $runs server runs under memcheck, 0 errors, 0 bytes definitely lost"
