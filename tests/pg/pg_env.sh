#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL 15: initdb into a temporary directory, the server on
# 127.0.0.1 and an ephemeral port with its unix socket in that directory, then the command with
# OW_TEST_PG set to a libpq conninfo for the server's "postgres" database; the server is stopped and
# the directory removed afterwards, whatever the command's outcome. PostgreSQL refuses to run as
# root, so under root (CI) the server runs as the user "nobody".
#
#   tests/pg/pg_env.sh COMMAND [ARGS...]   exit status is the command's
#
# The command also gets OW_TEST_PG_DIR (the cluster's directory: the tests' fault scripts restart
# or kill the server through OW_TEST_PG_CTL, a small control script: start, stop, kill, pause,
# resume).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: tests/pg/pg_env.sh COMMAND [ARGS...]" >&2
  exit 2
fi
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "pg_env: PostgreSQL server binaries not found (apt-get install postgresql-15)" >&2
  exit 1
fi
dir="$(mktemp -d "${TMPDIR:-/tmp}/ow-pg-XXXXXX")"
chmod 755 "$dir"
as=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$dir"
  as=(runuser -u nobody --)
fi
# A free port: PostgreSQL cannot be told to take port 0, so pick one at random from the ephemeral
# range that nothing answers on; if another program takes it before the server binds it, the start
# below fails and is tried again on another port.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
port="$(free_port)"
"${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C \
  >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 60
shared_buffers = 64MB
fsync = on
synchronous_commit = on
logging_collector = off
EOF

# The control script the fault tests use: restart, SIGKILL or pause the server behind the store.
ctl="$dir/ctl.sh"
cat >"$ctl" <<EOF
#!/usr/bin/env bash
set -euo pipefail
pid() { head -1 "$dir/data/postmaster.pid"; }
# The postmaster's children (the backends and auxiliary processes), from /proc: no procps needed.
kids() { awk -v p="\$1" '\$4 == p { print \$1 }' /proc/[0-9]*/stat 2>/dev/null || true; }
case "\$1" in
  start) ${as[*]} "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ;;
  stop) ${as[*]} "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ;;
  kill) p=\$(pid); kill -KILL -- \$(kids "\$p") "\$p" 2>/dev/null || true
        while kill -0 "\$p" 2>/dev/null; do sleep 0.05; done ;;
  pause) p=\$(pid); kill -STOP "\$p" \$(kids "\$p") ;;
  resume) p=\$(pid); kill -CONT "\$p" \$(kids "\$p") ;;
  *) echo "usage: ctl.sh start|stop|kill|pause|resume" >&2; exit 2 ;;
esac
EOF
chmod 755 "$ctl"

cleanup() {
  if [ -f "$dir/data/postmaster.pid" ]; then
    "$ctl" resume 2>/dev/null || true
    "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
started=0
for _ in 1 2 3 4 5; do
  if "$ctl" start 2>>"$dir/ctl.log"; then started=1; break; fi
  port="$(free_port)"
  echo "port = $port" >>"$dir/data/postgresql.conf" # the last setting of a name wins
done
[ "$started" -eq 1 ] || { cat "$dir/server.log" "$dir/ctl.log" >&2; exit 1; }

export OW_TEST_PG="host=127.0.0.1 port=$port user=postgres dbname=postgres"
export OW_TEST_PG_DIR="$dir"
export OW_TEST_PG_CTL="$ctl"
set +e
"$@"
rc=$?
set -e
exit "$rc"
