"""CLI sub-commands of the appliance simulator: ``appliance-image build`` and ``appliance-sim``.

They only need ``HEARTH_DATA_DIR`` (not the full settings: building an image on
a CI machine must not require a database URL), so they read that one variable.
The handlers live here, with the CLI; ``image`` and ``sim`` know nothing of it
(they import only the standard library, so importing them costs ``hearth --help``
nothing).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from engine.appliances.image import build_image, image_path, read_packages
from engine.appliances.sim import clone_roots, remove_roots
from engine.errors import ExecutionError


def data_dir() -> Path:
    return Path(os.environ.get("HEARTH_DATA_DIR") or "/var/lib/hearth")


def default_cache_dir() -> Path:
    """Where images are cached: ``$HEARTH_DATA_DIR/images``."""
    return data_dir() / "images"


def default_sim_dir() -> Path:
    """Where simulated appliance roots live: ``$HEARTH_DATA_DIR/appliances``."""
    return data_dir() / "appliances"


def _image_build(args: argparse.Namespace) -> int:
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    cached = image_path(cache_dir, read_packages())
    if cached.exists() and not args.force:
        print(f"cached: {cached}")
        return 0
    started = time.monotonic()
    path = build_image(cache_dir=cache_dir, mirror=args.mirror, force=args.force)
    print(f"built {path} in {time.monotonic() - started:.0f} s")
    return 0


def _sim_up(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise ExecutionError("count must be at least 1")
    dest = Path(args.dir) if args.dir else default_sim_dir()
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    image = build_image(cache_dir=cache)
    names = [f"{args.prefix}-{i}" for i in range(1, args.count + 1)]
    for root in clone_roots(image, dest, names):
        print(root)
    return 0


def _sim_down(args: argparse.Namespace) -> int:
    dest = Path(args.dir) if args.dir else default_sim_dir()
    removed = remove_roots(dest)
    print(f"removed {len(removed)} roots from {dest}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    image = subparsers.add_parser("appliance-image", help="build the Debian appliance image")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    build = image_sub.add_parser("build", help="debootstrap the image (reused when cached)")
    build.add_argument("--cache-dir", help="default: $HEARTH_DATA_DIR/images")
    build.add_argument("--mirror", help="Debian mirror (default: the one apt uses)")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.set_defaults(handler=_image_build)

    sim = subparsers.add_parser("appliance-sim", help="appliance roots on this machine")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="ACTION")
    up = sim_sub.add_parser("up", help="clone the image into N appliance roots")
    up.add_argument("count", type=int)
    up.add_argument("--dir", help="default: $HEARTH_DATA_DIR/appliances")
    up.add_argument("--cache-dir", help="image cache (default: $HEARTH_DATA_DIR/images)")
    up.add_argument("--prefix", default="appliance", help="root names are PREFIX-1..N")
    up.set_defaults(handler=_sim_up)
    down = sim_sub.add_parser("down", help="remove the appliance roots")
    down.add_argument("--dir", help="default: $HEARTH_DATA_DIR/appliances")
    down.set_defaults(handler=_sim_down)
