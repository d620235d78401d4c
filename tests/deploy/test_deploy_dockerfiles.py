"""The Dockerfiles, checked without a Docker engine: hadolint must pass them
clean, the Hearth image must be multi-stage, slim and non-root with the three
entry points, and the build context must keep what the Dockerfiles copy."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = ("Dockerfile", "deploy/appliance.Dockerfile")


def instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = (REPO / path).read_text()
    text = re.sub(r"\\\n", " ", text)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes_clean(find_tool, dockerfile):
    result = subprocess.run(
        [find_tool("hadolint"), "--no-color", "--failure-threshold", "style", dockerfile],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hearth_image_is_multi_stage_slim_and_non_root():
    steps = instructions("Dockerfile")
    bases = [args.split()[0] for keyword, args in steps if keyword == "FROM"]
    assert len(bases) >= 2, "expected a build stage and a runtime stage"
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"0", "root"}
    assert any(
        keyword == "RUN" and re.search(r"pip install\b.*\s\.$", args) for keyword, args in steps
    ), "the package is not installed with `pip install .`"
    runtime = steps[[i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"][-1] :]
    assert not any("gcc" in args or "build-essential" in args for _, args in runtime)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("api", "serve"),
        ("worker", "worker"),
        ("migrate", "db migrate"),
        ("", "serve"),
    ],
    ids=["api", "worker", "migrate", "default"],
)
def test_entrypoint_maps_roles_to_the_cli(tmp_path, role, expected):
    """Runs the image's entrypoint with a stand-in `hearth` that echoes its args."""
    fake = tmp_path / "hearth"
    fake.write_text('#!/bin/sh\necho "$*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    steps = instructions("Dockerfile")
    entrypoint = next(args for keyword, args in steps if keyword == "ENTRYPOINT")
    assert "hearth-entrypoint" in entrypoint
    script = REPO / "deploy" / "hearth-entrypoint.sh"
    result = subprocess.run(
        ["/bin/sh", str(script), *([role] if role else [])],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_appliance_image_installs_the_package_list_and_agent():
    steps = instructions("deploy/appliance.Dockerfile")
    assert [args for keyword, args in steps if keyword == "FROM"] == ["debian:12-slim"]
    copies = [args.split() for keyword, args in steps if keyword == "COPY"]
    sources_to_targets = {parts[-2]: parts[-1] for parts in copies}
    assert "engine/appliances/packages.txt" in sources_to_targets
    agent = sources_to_targets.get("ansible/roles/agent/files/hearth-agent.py")
    assert agent == "/usr/local/bin/hearth-agent"
    packages = sources_to_targets["engine/appliances/packages.txt"]
    assert any(keyword == "RUN" and packages in args for keyword, args in steps)


def test_package_list_parses_like_the_appliance_build():
    """The RUN line's sed keeps exactly the package names of the list."""
    steps = instructions("deploy/appliance.Dockerfile")
    run = next(args for keyword, args in steps if keyword == "RUN" and "sed" in args)
    sed = re.search(r"sed (-e '[^']*' ?)+", run)
    assert sed, run
    # The Dockerfile pipes this sed into `grep -v '^$'`; the split below drops empty lines too.
    result = subprocess.run(
        [*shlex.split(sed.group(0)), "engine/appliances/packages.txt"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    names = result.stdout.split()
    assert names and all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name) for name in names), names
    assert len(names) == len(set(names))


def ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(path, pattern) or any(
            fnmatch.fnmatch("/".join(parts[: i + 1]), bare) or fnmatch.fnmatch(part, bare)
            for i, part in enumerate(parts)
        ):
            return True
    return False


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_build_context_keeps_what_is_copied(dockerfile):
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored(".git", patterns) and ignored(".venv", patterns)
    for keyword, args in instructions(dockerfile):
        if keyword != "COPY" or "--from=" in args:
            continue
        sources = [part for part in args.split()[:-1] if not part.startswith("--")]
        for source in sources:
            assert not ignored(source, patterns), f"{dockerfile} copies {source}: ignored"
