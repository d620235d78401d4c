"""Benchmark: load and validate a 1,000-appliance tenant at a commit, cold and warm.

Run: ``.venv/bin/python tests/benchmarks/bench_repo_load.py [--appliances N] [--rounds R]``

cold  = a fresh SnapshotReader (empty blob cache) loading the head commit;
warm  = the same reader loading the next commit, which changes one appliance file.
Goal on the 2-core reference machine: cold < 1.0 s, warm < 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pygit2  # noqa: E402

from engine.repos.reader import SnapshotReader  # noqa: E402
from engine.repos.store import RepoStore  # noqa: E402
from tests.repos.fleet import appliance_yaml, write_fleet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appliances", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    author = pygit2.Signature("bench", "bench@hearth.invalid")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = write_fleet(ROOT / "example-config-repo", base / "src", args.appliances)
        size = sum(p.stat().st_size for p in source.rglob("*.yaml"))
        store = RepoStore(base / "repos")
        store.create("fleet", source, author=author)
        repo = store.open("fleet")
        head = store.head("fleet")
        cold, warm = [], []
        for round_ in range(args.rounds):
            reader = SnapshotReader()
            t0 = time.perf_counter()
            first = reader.load(repo, head)
            cold.append(time.perf_counter() - t0)
            content = appliance_yaml(7, site_suffix=f"-r{round_}").encode()
            next_id = store.commit_files("fleet", {"appliances/box-00007.yaml": content},
                                         message="change one", author=author,
                                         expected_head=head)
            t0 = time.perf_counter()
            second = reader.load(repo, next_id)
            warm.append(time.perf_counter() - t0)
            assert second.changed_appliances(first) == ["box-00007"]
            head = next_id
        print(f"tenant: {args.appliances} appliances, {size / 1024:.0f} KiB of YAML")
        print(f"cold load+validate: median {statistics.median(cold) * 1000:.0f} ms "
              f"(min {min(cold) * 1000:.0f}, max {max(cold) * 1000:.0f}) over {args.rounds}")
        print(f"warm load+validate (1 file changed): median {statistics.median(warm) * 1000:.1f} ms "
              f"(min {min(warm) * 1000:.1f}, max {max(warm) * 1000:.1f})")


if __name__ == "__main__":
    main()
