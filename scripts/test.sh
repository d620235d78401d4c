#!/usr/bin/env bash
# The README's test command (`make test`): set everything up, then run the whole suite.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export HEARTH_TEST_PG="${HEARTH_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"
export HEARTH_TEST_REDIS="${HEARTH_TEST_REDIS:-redis://127.0.0.1:6379}"
ensure_all "$HEARTH_TEST_PG" "$HEARTH_TEST_REDIS"
cd "$HEARTH_ROOT"
log "running the test suite"
exec "$VENV/bin/pytest" "$@"
