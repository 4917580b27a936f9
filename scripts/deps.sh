#!/usr/bin/env bash
# Installs what otherworld needs to build and run, from Debian's packages, if it is missing; with
# --test also what the test suite needs (the Godot 3.2 headless binary, valgrind, clang's fuzzer
# runtime, PostgreSQL 15 (libpq is a build dependency: the PostgreSQL store), SQLite and gnuplot for the benchmarks' quick modes and peers);
# with --bench also perf, for profiling the server under the full benchmarks. Safe to run again: it does nothing when
# everything is there.
set -euo pipefail

PKGS=(build-essential cmake pkg-config clang
      liblmdb-dev lmdb-utils libuv1-dev libjansson-dev libcmocka-dev libsodium-dev libzstd-dev
      libwebsockets-dev libsystemd-dev libpq-dev)

# libclang-rt-14-dev: clang's fuzzer and sanitizer runtimes for the libFuzzer stage (clang only
# recommends it).
# postgresql-15: the throwaway server of the pg_ tests (tests/pg/pg_env.sh) and the benchmarks.
TEST_PKGS=(godot3-server valgrind libclang-rt-14-dev postgresql-15 libsqlite3-dev
           gnuplot-nox)
for arg in "$@"; do
  case "$arg" in
    --test) PKGS+=("${TEST_PKGS[@]}") ;;
    --bench) PKGS+=("${TEST_PKGS[@]}" linux-perf) ;;
    *) echo "usage: scripts/deps.sh [--test] [--bench]" >&2; exit 2 ;;
  esac
done

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
