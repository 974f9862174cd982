#!/usr/bin/env bash
# The whole test suite from nothing: set-up (idempotent), then lint, typecheck and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
