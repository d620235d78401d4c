"""Locust load test of the heartbeat path (as the seed names it); not collected by pytest.

    HEARTH_TOKENS=tokens.txt locust -f tests/load_test.py --host http://127.0.0.1:8000

``tokens.txt`` holds one appliance token per line (``hearth appliance register``
prints them). Each simulated appliance takes the next token, sends heartbeats
with increasing sequences and fetches its config with If-None-Match, as the
agent does. For throughput figures use ``tests/benchmarks/bench_heartbeat.py``:
locust's own CPU cost is far above the server's on a 2-core machine.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from pathlib import Path

from locust import HttpUser, between, task

_TOKENS = itertools.cycle(
    Path(os.environ.get("HEARTH_TOKENS", "tokens.txt")).read_text().split())


class Appliance(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.token = next(_TOKENS)
        self.sequence = int(datetime.now(UTC).timestamp() * 1000)
        self.etag = ""
        self.client.headers["Authorization"] = f"Bearer {self.token}"

    @task(10)
    def heartbeat(self) -> None:
        self.sequence += 1
        with self.client.post("/api/v1/heartbeat", name="heartbeat", catch_response=True, json={
            "sequence": self.sequence, "sent_at": datetime.now(UTC).isoformat(),
            "agent_version": "locust", "services": [{"name": "named", "status": "running"}],
        }) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(1)
    def config(self) -> None:
        appliance_id = os.environ.get("HEARTH_APPLIANCE_ID")
        if not appliance_id:
            return
        response = self.client.get(f"/api/v1/appliance/{appliance_id}/config", name="config",
                                   headers={"If-None-Match": self.etag})
        self.etag = response.headers.get("ETag", self.etag)
