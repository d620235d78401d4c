"""CLI sub-commands of the appliance simulator: ``appliance-image build`` and ``appliance-sim``.

They only need ``HEARTH_DATA_DIR`` (not the full settings: building an image on
a CI machine must not require a database URL), so they read that one variable.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("HEARTH_DATA_DIR") or "/var/lib/hearth")


def default_cache_dir() -> Path:
    """Where images are cached: ``$HEARTH_DATA_DIR/images``."""
    return data_dir() / "images"


def default_sim_dir() -> Path:
    """Where simulated appliance roots live: ``$HEARTH_DATA_DIR/appliances``."""
    return data_dir() / "appliances"


def _image_build(args: argparse.Namespace) -> int:
    from engine.appliances.image import build_command

    return build_command(args)


def _sim_up(args: argparse.Namespace) -> int:
    from engine.appliances.sim import up_command

    return up_command(args)


def _sim_down(args: argparse.Namespace) -> int:
    from engine.appliances.sim import down_command

    return down_command(args)


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
