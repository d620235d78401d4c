#!/bin/bash
# Demo appliance (docker compose): write the agent's configuration from the
# environment, then play the systemd timer a real appliance has: report every
# HEARTBEAT_INTERVAL seconds and leave a stamp for the health check.
set -euo pipefail
mkdir -p /etc/hearth /var/lib/hearth-agent /run/hearth-agent
printf '{"api_url": "%s", "interval_seconds": %s}\n' "${HEARTH_API_URL:?set HEARTH_API_URL}" \
  "${HEARTBEAT_INTERVAL:-30}" > /etc/hearth/agent.json
if [ -n "${HEARTH_APPLIANCE_TOKEN:-}" ]; then
  umask 077
  printf '%s\n' "$HEARTH_APPLIANCE_TOKEN" > /etc/hearth/agent.token
fi
while true; do
  if python3 /usr/local/bin/hearth-agent --once; then touch /run/hearth-agent/last-ok; fi
  sleep "${HEARTBEAT_INTERVAL:-30}"
done
