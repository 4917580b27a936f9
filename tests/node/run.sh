#!/usr/bin/env bash
# Runs the Node.js protocol test against a server binary (OW_SERVER_BIN, default
# /work/main/build/otherworld). Installs the npm dependencies from the lockfile when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
export OW_SERVER_BIN="${OW_SERVER_BIN:-$(pwd)/../../build/otherworld}"
exec node --test test.js
