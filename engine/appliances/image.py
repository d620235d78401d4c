"""The appliance image: a Debian 12 root built with debootstrap, cached as a tarball.

Tests, the benchmark and the demo need real Debian boxes with samba, bind9 and
postfix installed; building one takes minutes, cloning one takes seconds. So the
root is built once (``debootstrap --variant=minbase bookworm`` plus the packages
of ``packages.txt``), packed as ``hearth-appliance-<key>.tar.zst`` and reused
while the key holds. The key is a hash of the package list and of ``RECIPE``,
the build steps below: change either and the next build makes a new tarball.

Services never start during the install: ``/usr/sbin/policy-rc.d`` answers 101
("action forbidden") to every ``invoke-rc.d`` while packages are installed, and
stays in the image because no init system runs in the roots anyway. /proc is
mounted in the root only while apt runs (some maintainer scripts read it) and
is unmounted in a ``finally``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.errors import ExecutionError

PACKAGES_FILE = Path(__file__).with_name("packages.txt")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

RECIPE = """\
v3
debootstrap --variant=minbase --include=python3 bookworm
dpkg path-exclude docs/man/locales
policy-rc.d exit 101
mount /proc; apt-get install --no-install-recommends <packages>; umount /proc
apt-get clean; rm apt lists; hostname appliance
tar --numeric-owner --xattrs | zstd -T0 -3
"""
"""The build steps as text: part of the cache key, so editing the steps rebuilds."""

_DPKG_EXCLUDES = """\
# Hearth appliance image: no documentation, manuals or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""

_POLICY_RC_D = """\
#!/bin/sh
# Hearth appliance image: no init system runs here; never start services.
exit 101
"""


def read_packages(path: Path = PACKAGES_FILE) -> list[str]:
    """Package names of ``packages.txt``: one a line, ``#`` comments, blank lines ignored."""
    names = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def image_key(packages: list[str]) -> str:
    """Cache key of an image: hash of the sorted package list and the recipe."""
    digest = hashlib.sha256()
    digest.update(RECIPE.encode())
    digest.update("\n".join(sorted(set(packages))).encode())
    return digest.hexdigest()[:16]


def image_path(cache_dir: Path, packages: list[str]) -> Path:
    return cache_dir / f"hearth-appliance-{image_key(packages)}.tar.zst"


def apt_mirror() -> str:
    """The Debian mirror apt on this machine uses (debootstrap gets the same one)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            for word in words:
                if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                    return word.rstrip("/")
    return DEFAULT_MIRROR


def ensure_debootstrap() -> str:
    """Path of debootstrap, installing it with apt when missing (CI on a fresh machine)."""
    found = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "debootstrap"]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ExecutionError(f"{' '.join(argv)} failed: {proc.stderr[-2000:]}")
    return "/usr/sbin/debootstrap"


@contextlib.contextmanager
def mounted_proc(root: Path) -> Iterator[None]:
    """/proc mounted inside ``root`` for the duration of the block, always unmounted."""
    target = root / "proc"
    target.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(target)], check=True)
    try:
        yield
    finally:
        if subprocess.run(["umount", str(target)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=False)


def _run(argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise ExecutionError(f"{argv[0]} exited {proc.returncode} (log {log}):\n{tail}")


def build_image(
    *,
    cache_dir: Path,
    packages_file: Path = PACKAGES_FILE,
    mirror: str | None = None,
    force: bool = False,
    log: Path | None = None,
) -> Path:
    """The image tarball for ``packages_file``, built unless already cached."""
    packages = read_packages(packages_file)
    target = image_path(cache_dir, packages)
    if target.exists() and not force:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    debootstrap = ensure_debootstrap()
    mirror = mirror or apt_mirror()
    log = log or cache_dir / f"{target.name}.build.log"
    log.write_text("")
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
        "HOME": "/root",
    }
    with tempfile.TemporaryDirectory(prefix="hearth-image-", dir=cache_dir) as work:
        root = Path(work) / "root"
        _run([debootstrap, "--variant=minbase", "--include=python3", SUITE, str(root), mirror],
             log=log, env=env)
        (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/dpkg/dpkg.cfg.d/hearth-nodoc").write_text(_DPKG_EXCLUDES)
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(_POLICY_RC_D)
        policy.chmod(0o755)
        with mounted_proc(root):
            chroot = ["chroot", str(root)]
            _run([*chroot, "apt-get", "update"], log=log, env=env)
            _run([*chroot, "apt-get", "install", "-y", "--no-install-recommends", *packages],
                 log=log, env=env)
            _run([*chroot, "apt-get", "clean"], log=log, env=env)
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (root / "etc/hostname").write_text("appliance\n")
        partial = target.with_suffix(".partial")
        _run(["tar", "--numeric-owner", "--xattrs", "-C", str(root),
              "--use-compress-program=zstd -T0 -3", "-cf", str(partial), "."], log=log)
        partial.replace(target)
        shutil.rmtree(root, ignore_errors=True)
    return target
