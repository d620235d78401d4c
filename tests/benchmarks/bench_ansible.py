"""Benchmark: what one ansible-runner run costs, per run and per appliance.

Run as a script (pytest does not collect it), as root, from the repository:

    .venv/bin/python tests/benchmarks/bench_ansible.py [--sizes 1 10 25] [--keep]

For each size N it clones N fresh appliance roots from the cached image, then
times one run of site.yml (all domains, every appliance carrying users,
groups, a zone, three shares, mail and a certificate) from scratch, and one
more with nothing to change. On one appliance it then times a one-user change
(the users playbook only, as the reconciler runs it) and counts its module
executions. Fixed cost per run and cost per appliance are the intercept and
slope of a least-squares line through the idempotent runs.

Goals (issue 4): one-user change on one appliance < 3 s of Ansible wall time;
an idempotent all-domains run on 25 appliances < 60 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.appliances.commands import default_cache_dir  # noqa: E402
from engine.appliances.image import build_image  # noqa: E402
from engine.appliances.sim import clone_roots, remove_root  # noqa: E402
from engine.execution.ansible import AnsibleExecutor, RunResult  # noqa: E402
from engine.execution.extravars import appliance_vars, build_extravars  # noqa: E402
from engine.execution.workspace import Target  # noqa: E402
from schemas.config import DesiredAppliance  # noqa: E402
from tests.ansible.desired import appliance_data  # noqa: E402


def _desired(name: str, *, full_name: str | None = None) -> DesiredAppliance:
    data = appliance_data(name)
    if full_name is not None:
        data["users"]["users"][1]["full_name"] = full_name
    return DesiredAppliance.model_validate(data)


def _run(executor: AnsibleExecutor, roots: dict[str, Path], desired: dict[str, DesiredAppliance],
         *, run_id: str, domains: list[str] | None = None) -> RunResult:
    extravars = build_extravars([appliance_vars(d) for d in desired.values()])
    targets = [Target(name=name, root=root) for name, root in roots.items()]
    result = executor.run(run_id=run_id, extravars=extravars, targets=targets, domains=domains)
    if not result.succeeded:
        failed = [e for e in result.events if e["event"] == "runner_on_failed"]
        raise SystemExit(f"run {run_id} failed: {failed[:3]}")
    return result


def _line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope of duration against appliance count."""
    n = len(points)
    if n < 2:
        return points[0][1], 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0
    return mean_y - slope * mean_x, slope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 25])
    parser.add_argument("--keep", action="store_true", help="keep roots and run directories")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (appliance roots are chroots)")

    started = time.monotonic()
    image = build_image(cache_dir=default_cache_dir())
    print(f"image {image.name} ready in {time.monotonic() - started:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    executor = AnsibleExecutor(data_dir=work / "data", forks=25)
    idempotent: list[tuple[int, float]] = []
    rows = []
    one_user: RunResult | None = None
    try:
        for size in args.sizes:
            names = [f"bench-{size}-{i}" for i in range(1, size + 1)]
            t = time.monotonic()
            paths = clone_roots(image, work / "roots", names)
            clone_s = time.monotonic() - t
            roots = dict(zip(names, paths, strict=True))
            desired = {n: _desired(n) for n in names}
            scratch = _run(executor, roots, desired, run_id=f"scratch-{size}")
            again = _run(executor, roots, desired, run_id=f"again-{size}")
            changed = sum(h.changed for h in again.hosts.values())
            idempotent.append((size, again.duration))
            executions = sum(h.executions for h in again.hosts.values()) / size
            rows.append((size, clone_s, scratch.duration, again.duration, changed, executions))
            if size == min(args.sizes):
                first = names[0]
                changed_desired = {first: _desired(first, full_name="Bob the Builder")}
                one_user = _run(executor, {first: roots[first]}, changed_desired,
                                run_id="one-user", domains=["users"])
            if not args.keep:
                for path in paths:
                    remove_root(path)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'appliances':>10} {'clone s':>8} {'scratch s':>10} {'no-op s':>8} "
          f"{'no-op changed':>13} {'executions/appliance':>21}")
    for size, clone_s, scratch_s, again_s, changed, executions in rows:
        print(f"{size:>10} {clone_s:>8.1f} {scratch_s:>10.1f} {again_s:>8.1f} {changed:>13} "
              f"{executions:>21.1f}")
    fixed, per_appliance = _line(idempotent)
    print()
    print(f"fixed cost per run (intercept, idempotent runs): {fixed:.2f} s")
    print(f"cost per appliance (slope, idempotent runs):      {per_appliance:.2f} s")
    if one_user is not None:
        host = next(iter(one_user.hosts.values()))
        print(f"one-user change on one appliance: {one_user.duration:.2f} s Ansible wall time, "
              f"{host.executions} module execution(s), changed={host.changed} "
              f"(goal < 3 s)")
    if 25 in dict(idempotent):
        print(f"idempotent all-domains run on 25 appliances: {dict(idempotent)[25]:.1f} s "
              f"(goal < 60 s)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
