#!/usr/bin/env bash
# The whole test suite from nothing: set-up (idempotent), the VM's pieces (built once, then cached), then lint,
# typecheck and every test, the VM tier last. CROSSWAY_SKIP_VM=1 skips the VM tier (and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${CROSSWAY_SKIP_VM:-}" = 1 ]; then
  echo "test: VM tier skipped (CROSSWAY_SKIP_VM=1)"
else
  # Builds QEMU + rutabaga on the first run (minutes, one core), reuses its cache after; fails on missing pieces.
  CROSSWAY_VM_ENV=$(bash scripts/setup-vm.sh)
  export CROSSWAY_VM_ENV
fi
npm test
