#!/usr/bin/env bash
# `make mutation`: a mutation score for the security core (not part of `make test`).
#
# mutmut (pyproject.toml [tool.mutmut]) copies api/, engine/ and schemas/ into
# mutants/, mutates the five modules below and, for each mutant, runs only the
# tests that reached the mutated function (it records that in one traced run
# of the tests named in pytest_add_cli_args_test_selection). Then this script
# prints the score of each module from mutants/*.meta.
#
#   scripts/mutation.sh                  all five modules
#   scripts/mutation.sh auth queue       some of: auth heartbeats yaml_loader queue diff
#   MUTATION_JOBS=2 scripts/mutation.sh  mutants tested at once (default 1: the tests of
#                                        one area share a Redis database and would
#                                        flush each other's)
#
# The tests need PostgreSQL (HEARTH_TEST_PG, as for `make test`). Redis is a
# server of this script's own on a free port, so a run never touches the
# databases of a Redis that other test runs (or a Hearth) use; set
# HEARTH_TEST_REDIS to use another server.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() { log "$*"; exit 1; }
cd "$HEARTH_ROOT"

declare -A MODULES=(
    [auth]="api/auth.py"
    [heartbeats]="api/heartbeats.py"
    [yaml_loader]="engine/repos/yaml_loader.py"
    [queue]="engine/reconcile/queue.py"
    [diff]="engine/planning/diff.py"
)
ORDER=(auth heartbeats yaml_loader queue diff)

selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${ORDER[@]}")
globs=()
files=()
for name in "${selected[@]}"; do
    file="${MODULES[$name]:-}"
    [ -n "$file" ] || die "unknown module '$name'; choose from: ${ORDER[*]}"
    files+=("$file")
    module="${file%.py}"
    globs+=("${module//\//.}.*")
done

export HEARTH_TEST_PG="${HEARTH_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"
ensure_system_packages
ensure_venv
if is_local_service "$HEARTH_TEST_PG" 5432; then
    ensure_postgres "$(url_part "$HEARTH_TEST_PG" path)"
fi

redis_pid=
redis_dir=
cleanup() {
    if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; fi
    [ -n "$redis_dir" ] && rm -rf "$redis_dir"
}
trap cleanup EXIT
if [ -z "${HEARTH_TEST_REDIS:-}" ]; then
    command -v redis-server >/dev/null || die "redis-server is not installed (scripts/lib.sh installs it)"
    port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis_dir=$(mktemp -d)
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$redis_dir" \
        >"$redis_dir/log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -p "$port" ping >/dev/null 2>&1 || die "redis-server did not start on port $port"
    export HEARTH_TEST_REDIS="redis://127.0.0.1:$port"
fi
log "mutating ${selected[*]} (Redis $HEARTH_TEST_REDIS, ${MUTATION_JOBS:-1} at a time)"

# mutmut reuses mutants/ between runs; a stale copy of a changed test would mislead.
rm -rf mutants/tests
"$VENV/bin/mutmut" run --max-children "${MUTATION_JOBS:-1}" "${globs[@]}" || die "mutmut failed"

"$VENV/bin/python" - "${files[@]}" <<'EOF'
"""Per-module score from mutmut's result files (mutants/<module>.meta)."""
import json
import sys
from collections import Counter

KILLED = {1, 3, 24, -24, 36, 152, 255}  # a failing test, an error, a timeout
NAMES = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}
total_killed = total_counted = 0
for path in sys.argv[1:]:
    with open(f"mutants/{path}.meta") as f:
        codes = json.load(f)["exit_code_by_key"]
    statuses = Counter("killed" if c in KILLED else NAMES.get(c, f"exit {c}") for c in codes.values())
    counted = sum(n for status, n in statuses.items() if status not in ("skipped", "not checked"))
    killed = statuses["killed"]
    total_killed += killed
    total_counted += counted
    score = 100 * killed / counted if counted else 0.0
    rest = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()) if s != "killed")
    print(f"{path:32} {killed:4d}/{counted:<4d} killed  {score:5.1f} %  {rest}")
    for key, code in sorted(codes.items()):
        if code not in KILLED and code not in (34, None):
            print(f"    {NAMES.get(code, f'exit {code}'):9} {key}")
if len(sys.argv) > 2 and total_counted:
    print(f"{'all':32} {total_killed:4d}/{total_counted:<4d} killed  "
          f"{100 * total_killed / total_counted:5.1f} %")
EOF
