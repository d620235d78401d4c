"""``hearth serve``: run the API under uvicorn (uvloop + httptools, never plain h11)."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=max(os.cpu_count() or 1, 1),
                       help="worker processes (default: one per CPU)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    import uvicorn

    from engine.settings import load_settings

    load_settings()  # fail here, once, with every problem listed
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hearth-metrics-")
    uvicorn.run("api.app:serve_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_config=None, server_header=False,
                # X-Forwarded-For is read by the app, from HEARTH_TRUSTED_PROXIES only
                proxy_headers=False)
    return 0
