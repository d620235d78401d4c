"""Hearth's own Prometheus metrics, next to Litestar's request metrics.

With several worker processes ``hearth serve`` sets PROMETHEUS_MULTIPROC_DIR
so ``/metrics`` aggregates all of them (prometheus_client multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HEARTBEATS_ACCEPTED = Counter(
    "hearth_heartbeats_accepted_total", "Heartbeats stored durably")
HEARTBEATS_REJECTED = Counter(
    "hearth_heartbeats_rejected_total", "Heartbeats refused, by reason", ["reason"])
HEARTBEAT_WRITE_SECONDS = Histogram(
    "hearth_heartbeat_write_seconds", "Time from receipt to durable commit of a heartbeat",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0))
LOGINS = Counter("hearth_logins_total", "Login attempts, by outcome", ["outcome"])
