#!/usr/bin/env bash
# Installs otherworld as a system service on Debian 12: builds (scripts/build.sh), installs the
# binaries, the default content, the docs and a systemd unit with a watchdog under the prefix
# (cmake --install), writes /etc/otherworld/otherworld.conf once (never over an existing one),
# creates the system user `otherworld` and /var/lib/otherworld, and reloads systemd. Then:
#   systemctl enable --now otherworld     journalctl -u otherworld -f
# Options: --prefix DIR (default /usr/local), --destdir DIR (stage into DIR, for packaging and the
# test: no user, no systemctl), --build DIR (default build), --no-build (install what is built).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
destdir=""
build=build
do_build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$do_build" = 1 ]; then
  bash scripts/deps.sh
  bash scripts/build.sh "$build"
fi
[ -x "$build/otherworld" ] || { echo "install: $build/otherworld is not built" >&2; exit 2; }
# The prefix is written into the unit and the config (configure_file): configure again when the
# build was made for another one.
if ! grep -qx "CMAKE_INSTALL_PREFIX:PATH=$prefix" "$build/CMakeCache.txt"; then
  cmake -S . -B "$build" -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --build "$build" -j"$(nproc)" >/dev/null
fi
DESTDIR="$destdir" cmake --install "$build" >/dev/null

etc="$destdir/etc/otherworld"
mkdir -p "$etc"
if [ -e "$etc/otherworld.conf" ]; then
  echo "install: $etc/otherworld.conf exists, left as it is"
else
  install -m 0644 "$destdir$prefix/share/otherworld/otherworld.conf.example" "$etc/otherworld.conf"
fi
unit="$destdir$prefix/lib/systemd/system/otherworld.service"
if [ -z "$destdir" ]; then
  id -u otherworld >/dev/null 2>&1 ||
    useradd --system --home-dir /var/lib/otherworld --shell /usr/sbin/nologin otherworld
  install -d -o otherworld -g otherworld -m 0750 /var/lib/otherworld
  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
fi
echo "install: $destdir$prefix/bin/otherworld, $unit, $etc/otherworld.conf"
echo "install: start it with: systemctl enable --now otherworld"
