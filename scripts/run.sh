#!/usr/bin/env bash
# The README's run command (`make run`): set everything up, then run Hearth's
# main job — the API, a reconcile worker and the demo tenant with appliances.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The demo's defaults (engine/demo.py DEFAULTS); the environment wins, as in the demo.
ensure_all "${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/hearth}" \
           "${REDIS_URL:-redis://127.0.0.1:6379/0}"
cd "$HEARTH_ROOT"
install_wrapper
log "starting the demo (Ctrl-C stops it)"
exec "$VENV/bin/hearth" demo "$@"
