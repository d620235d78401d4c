"""The bare endpoint of the heartbeat benchmark: Litestar, one POST route, a JSON body, no I/O.

This is the "bare Litestar endpoint with a 1 KiB body" the issue measures against:
the same framework, server, workers and body as a heartbeat, and nothing else
(no auth, rate limit, validation model, database or Redis). Served by
``bench_heartbeat.py`` with ``uvicorn --workers 2 --loop uvloop --http httptools``.
"""

from typing import Any

from litestar import Litestar, post


@post("/echo", status_code=200)
async def echo(data: dict[str, Any]) -> dict[str, Any]:
    return {"accepted_sequence": data.get("sequence"), "desired_revision": None,
            "next_interval_seconds": 60}


app = Litestar([echo])
