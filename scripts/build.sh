#!/usr/bin/env bash
# Configures and builds otherworld into ./build (or $1), in RelWithDebInfo, or with ASan+UBSan
# when OW_SANITIZE=ON is set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOW_SANITIZE="${OW_SANITIZE:-OFF}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
