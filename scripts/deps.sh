#!/usr/bin/env bash
# Installs what otherworld needs to build and run, from Debian's packages, if it is missing; with
# --test also what the test suite needs (the Godot 3.2 headless binary); with --bench what the full
# benchmarks use (gnuplot for bench/scaling's and bench/sessions' plots, perf for profiles). Safe to
# run again: it does nothing when everything is there.
set -euo pipefail

PKGS=(build-essential cmake pkg-config clang
      liblmdb-dev lmdb-utils libuv1-dev libjansson-dev libcmocka-dev libsodium-dev libzstd-dev
      libwebsockets-dev)

if [ "${1:-}" = "--test" ]; then PKGS+=(godot3-server); fi
if [ "${1:-}" = "--bench" ]; then PKGS+=(gnuplot-nox linux-perf); fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the protocol test written from docs/protocol.md; the machines ship node 20, Debian's
# package is the fallback.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
