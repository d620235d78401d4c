"""CLI: ``hearth worker``, a reconcile worker (``engine.reconcile.worker``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser("worker", help="run a reconcile worker")
    worker.add_argument("--batch-size", type=int, default=25)
    worker.add_argument("--resync-interval", type=float, default=180.0,
                        help="seconds between periodic resyncs of every appliance")
    worker.add_argument("--heartbeat-interval", type=float, default=None,
                        help="agents' heartbeat interval in seconds, Missing after three "
                             "(default: HEARTH_HEARTBEAT_INTERVAL)")
    worker.add_argument("--roots-dir", type=Path,
                        help="appliance roots on this machine (<dir>/<tenant>/<name>)")
    worker.add_argument("--no-watch", action="store_true", help="do not watch REPOS_DIR")
    worker.add_argument("--liveness-interval", type=float, default=2.0,
                        help="seconds between the worker's beats in Redis; /ready reports no "
                             "live worker two of them after the last beat")
    worker.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    import logging

    from engine.reconcile.worker import WorkerOptions, run_worker
    from engine.settings import load_settings

    settings = load_settings()
    if args.heartbeat_interval is not None:
        settings = settings.model_copy(update={"heartbeat_interval_seconds":
                                               args.heartbeat_interval})
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_worker(settings, WorkerOptions(
        batch_size=args.batch_size, resync_interval=args.resync_interval,
        roots_dir=args.roots_dir, liveness_interval=args.liveness_interval,
        watch=not args.no_watch))
