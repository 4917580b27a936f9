#!/usr/bin/env bash
# Installs what is missing, builds, and runs the server on its embedded default store in ./data.
# Extra arguments go to the server (see ./build/otherworld --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
exec ./build/otherworld --data_dir ./data "$@"
