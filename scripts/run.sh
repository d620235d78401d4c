#!/usr/bin/env bash
# The README's run command (`make run`): set everything up, then run Hearth's
# main job — the API, a reconcile worker and the demo tenant with appliances.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_all
cd "$HEARTH_ROOT"
log "starting the demo (Ctrl-C stops it)"
exec "$VENV/bin/hearth" demo "$@"
