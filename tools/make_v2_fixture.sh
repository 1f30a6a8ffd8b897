#!/usr/bin/env bash
# tools/make_v2_fixture.sh: builds tests/fixtures/store-v2, a data directory
# written by the last mailvault that wrote store format 2 (commit b954dbd,
# the parent of 2456a53 which introduced format 3), for the upgrade tests
# (tests/system/test_upgrade_v2.py).  The work is
# tools/make_store_fixture.sh's, shared with make_v1_fixture.sh.
#
#   tools/make_v2_fixture.sh [OUT_DIR]      (default: tests/fixtures/store-v2)
set -euo pipefail
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
exec "$REPO/tools/make_store_fixture.sh" 2 b954dbd "${1:-$REPO/tests/fixtures/store-v2}"
