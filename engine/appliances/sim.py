"""Simulated appliances: clones of the appliance image as roots on this machine.

Each root is a full Debian tree unpacked from the image tarball into its own
directory, so Ansible (through the chroot connection) and the heartbeat agent
(``chroot ROOT python3 /usr/local/bin/hearth-agent``) work on a real system and
the services' own checkers run for real. Nothing is shared between roots, so a
test may break one without touching the others.

Nothing is mounted in a root by default: the roles and the agent were written
to need neither /proc nor /dev beyond what the tarball holds. ``unmount_all``
still looks for anything mounted below a directory (a tool or a person may have
mounted /proc for debugging) and unmounts it before a root is deleted, deepest
first, so ``down`` never deletes through a live mount.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.errors import ExecutionError

ROOTS_FILE = ".hearth-roots"
"""Marker in a simulator directory listing the roots ``up`` made (``down`` removes only those)."""


def clone_root(image_tarball: Path, root: Path, hostname: str) -> Path:
    """Unpack the image into ``root`` (which must not exist) and give it ``hostname``."""
    if root.exists():
        raise ExecutionError(f"{root} already exists; remove it first (appliance-sim down)")
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        remove_root(partial)
    partial.mkdir(parents=True)
    proc = subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "--use-compress-program=zstd -d -T0",
         "-C", str(partial), "-xf", str(image_tarball)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        remove_root(partial)
        raise ExecutionError(f"unpacking {image_tarball} failed: {proc.stderr[-2000:]}")
    short = hostname.split(".", 1)[0]
    (partial / "etc/hostname").write_text(short + "\n")
    (partial / "etc/mailname").write_text(hostname + "\n")
    names = f"{hostname} {short}" if short != hostname else hostname
    (partial / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    partial.rename(root)
    return root


def clone_roots(image_tarball: Path, dest_dir: Path, names: list[str],
                *, hostnames: dict[str, str] | None = None) -> list[Path]:
    """Roots ``dest_dir/<name>`` for each name, unpacked two at a time; returns their paths."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    hostnames = hostnames or {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(clone_root, image_tarball, dest_dir / name, hostnames.get(name, name))
            for name in names
        ]
        roots = [f.result() for f in futures]
    marker = dest_dir / ROOTS_FILE
    known = set(marker.read_text().split()) if marker.exists() else set()
    marker.write_text("\n".join(sorted(known | set(names))) + "\n")
    return roots


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first."""
    base = str(path.resolve())
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == base or point.startswith(base + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all(path: Path) -> None:
    """Unmount everything mounted below ``path``; lazily when a plain unmount fails."""
    for point in mounts_below(path):
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    left = mounts_below(path)
    if left:
        raise ExecutionError(f"could not unmount {', '.join(map(str, left))}")


def remove_root(root: Path) -> None:
    if not root.exists():
        return
    unmount_all(root)
    shutil.rmtree(root)


def remove_roots(dest_dir: Path) -> list[str]:
    """Delete the roots ``clone_roots`` made in ``dest_dir``; returns their names."""
    marker = dest_dir / ROOTS_FILE
    if not marker.exists():
        return []
    names = marker.read_text().split()
    for name in names:
        remove_root(dest_dir / name)
    marker.unlink()
    return names
