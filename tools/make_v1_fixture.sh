#!/usr/bin/env bash
# tools/make_v1_fixture.sh: builds tests/fixtures/store-v1, a data directory
# written by the last mailvault that wrote store format 1 (commit 77fa7d3),
# for the upgrade tests (tests/system/test_upgrade.py).  The work is
# tools/make_store_fixture.sh's, shared with make_v2_fixture.sh.
#
#   tools/make_v1_fixture.sh [OUT_DIR]      (default: tests/fixtures/store-v1)
set -euo pipefail
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
exec "$REPO/tools/make_store_fixture.sh" 1 77fa7d3 "${1:-$REPO/tests/fixtures/store-v1}"
