# syntax=docker/dockerfile:1
# A demo appliance for docker compose: a Debian 12 box with the packages of
# engine/appliances/packages.txt (the same list the debootstrap appliance image
# is built from) and the heartbeat agent. Build from the repository root:
#   docker build -f deploy/appliance.Dockerfile .
#
# It runs as root on purpose: it stands in for a whole server that Ansible
# manages (users, samba, bind9, postfix), not for an application process.

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY engine/appliances/packages.txt /tmp/packages.txt
# Versions come from the list and Debian 12's archive, not from this file.
# hadolint ignore=DL3008
RUN apt-get update \
    && sed -e 's/#.*//' -e 's/[[:space:]]//g' /tmp/packages.txt | grep -v '^$' \
        | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/packages.txt
COPY --chmod=0755 ansible/roles/agent/files/hearth-agent.py /usr/local/bin/hearth-agent
COPY --chmod=0755 deploy/appliance-entrypoint.sh /usr/local/bin/hearth-appliance
# The agent reports every HEARTBEAT_INTERVAL seconds; the health check reads
# the stamp the loop leaves after each successful report. The entry point
# writes /etc/hearth/agent.json and agent.token from HEARTH_API_URL and
# HEARTH_APPLIANCE_TOKEN.
ENV HEARTBEAT_INTERVAL=30
CMD ["/usr/local/bin/hearth-appliance"]
