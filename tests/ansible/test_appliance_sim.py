"""The appliance image cache key and the roots cloned from the image."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.appliances.image import image_key, read_packages
from engine.appliances.sim import clone_roots, mounts_below, remove_roots


def test_image_key_follows_the_package_list(tmp_path: Path) -> None:
    listed = tmp_path / "packages.txt"
    listed.write_text("# comment\npython3\n\nsamba  # inline comment\n")
    assert read_packages(listed) == ["python3", "samba"]
    assert image_key(["python3", "samba"]) == image_key(["samba", "python3", "samba"])
    assert image_key(["python3", "samba"]) != image_key(["python3", "samba", "bind9"])


@pytest.mark.e2e
def test_roots_get_their_hostname_and_down_unmounts(appliance_image: Path,
                                                    tmp_path: Path) -> None:
    roots = clone_roots(appliance_image, tmp_path, ["sim-1", "sim-2"],
                        hostnames={"sim-1": "sim-1.example.test"})
    assert (roots[0] / "etc/hostname").read_text() == "sim-1\n"
    assert (roots[0] / "etc/mailname").read_text() == "sim-1.example.test\n"
    assert (roots[1] / "etc/hostname").read_text() == "sim-2\n"
    assert (roots[0] / "usr/sbin/policy-rc.d").read_text().strip().endswith("exit 101")
    subprocess.run(["mount", "-t", "proc", "proc", str(roots[0] / "proc")], check=True)
    assert mounts_below(roots[0])
    assert remove_roots(tmp_path) == ["sim-1", "sim-2"]
    assert not mounts_below(tmp_path)
    assert not roots[0].exists() and not roots[1].exists()
