"""Benchmark: the human side of the loop on a 1,000-appliance tenant, over real HTTP.

Run: ``.venv/bin/python tests/benchmarks/bench_pulls.py [--appliances N]``

A throwaway PostgreSQL database, a private Redis, the app under uvicorn in a
thread, the stock ``git`` client. Figures (goals from the issue):
clone over HTTP (< 1 s); push of one changed file -> accepted (< 1 s); pull
request opened -> checks complete (validation + plan preview of every affected
appliance; the change is to users.yaml, so all of them; < 2 s); merge (< 200 ms).
Appliances are registered but have sent no heartbeat, so each preview plans
everything as missing (the largest plans).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from api.auth import issue_person_token  # noqa: E402
from engine.db.migrate import apply_migrations  # noqa: E402
from engine.db.people import hash_password  # noqa: E402
from engine.repos.store import RepoStore, signature  # noqa: E402
from engine.settings import Settings  # noqa: E402
from tests.api.gitclient import authed, git, http_server, make_token  # noqa: E402
from tests.db.pg import Databases  # noqa: E402
from tests.repos.fleet import write_fleet  # noqa: E402
from tests.services import private_redis  # noqa: E402


async def seed(dsn: str, appliances: int) -> tuple[int, int]:
    await apply_migrations(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        tenant = await conn.fetchval(
            "INSERT INTO tenants (name, display_name) VALUES ('fleet', 'Fleet') RETURNING id")
        ids = []
        for name, admin in (("olga", False), ("root", True)):
            ids.append(await conn.fetchval(
                "INSERT INTO people (username, password_hash, is_admin) VALUES ($1, $2, $3) "
                "RETURNING id", name, hash_password("x" * 16), admin))
        await conn.execute("INSERT INTO memberships VALUES ($1, $2, 'operator')", ids[0], tenant)
        await conn.executemany("INSERT INTO appliances (tenant_id, name) VALUES ($1, $2)",
                               [(tenant, f"box-{i:05d}") for i in range(appliances)])
    finally:
        await conn.close()
    return ids[0], ids[1]


async def run(args: argparse.Namespace) -> None:
    databases = Databases()
    dsn = databases.create()
    try:
        with tempfile.TemporaryDirectory() as tmp, private_redis() as redis_url:
            base = Path(tmp)
            source = write_fleet(ROOT / "example-config-repo", base / "src", args.appliances)
            store = RepoStore(base / "repos")
            store.create("fleet", source, author=signature("bench", "bench@hearth.invalid"))
            settings = Settings.model_validate({
                "DATABASE_URL": dsn, "REDIS_URL": redis_url, "OLLAMA_API_URL": "http://127.0.0.1:9",
                "SECRET_KEY": "bench-secret-key-0123456789abcdefghijkl",
                "JWT_SECRET": "bench-jwt-secret-0123456789abcdefghijkl",
                "ANSIBLE_VAULT_PASSWORD": "vault-0123456789", "REPOS_DIR": str(base / "repos"),
                "HEARTH_DATA_DIR": str(base / "data")})
            operator, admin = await seed(dsn, args.appliances)
            token = await make_token(settings, operator)
            jwt = {pid: {"Authorization": "Bearer " + issue_person_token(
                secret=settings.jwt_secret, person_id=pid, lifetime=3600)}
                for pid in (operator, admin)}
            with http_server(settings) as server:
                async with httpx.AsyncClient(base_url=server, timeout=120) as api:
                    await figures(args, server, api, token, jwt[operator], jwt[admin], base)
    finally:
        databases.drop_all()


async def figures(args: argparse.Namespace, server: str, api: httpx.AsyncClient, token: str,
                  operator: dict[str, str], admin: dict[str, str], base: Path) -> None:
    clones = []
    for i in range(3):
        t0 = time.perf_counter()
        git("clone", "-q", authed(server, token, "fleet"), str(base / f"clone-{i}"))
        clones.append(time.perf_counter() - t0)
    work = base / "clone-0"
    files = sum(1 for p in work.rglob("*") if p.is_file() and ".git" not in p.parts)
    print(f"tenant: {args.appliances} appliances, {files} files")
    print(f"git clone over HTTP: {min(clones) * 1000:.0f} ms best of 3 "
          f"({', '.join(f'{c * 1000:.0f}' for c in clones)})")
    pushes, opened, merges = [], [], []
    for i in range(args.rounds):
        users = work / "users.yaml"
        git("checkout", "-q", "-B", f"change-{i}", "origin/main", cwd=work)
        users.write_text(users.read_text().replace("full_name: Julia Chen",
                                                   f"full_name: Julia Chen {i}"))
        git("commit", "-qam", f"rename {i}", cwd=work)
        t0 = time.perf_counter()
        git("push", "-q", "origin", f"change-{i}", cwd=work)
        pushes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        answer = await api.post("/api/v1/tenants/fleet/pulls", headers=operator,
                                json={"title": f"rename {i}", "source": f"change-{i}"})
        number = answer.json()["number"]
        while True:
            pull = (await api.get(f"/api/v1/tenants/fleet/pulls/{number}",
                                  headers=operator)).json()
            if pull["checks"]["status"] in ("passed", "failed"):
                break
            await asyncio.sleep(0.01)
        opened.append(time.perf_counter() - t0)
        assert pull["checks"]["status"] == "passed", pull["checks"]
        affected = len(pull["checks"]["plan_preview"]["appliances"])
        await api.post(f"/api/v1/tenants/fleet/pulls/{number}/reviews", headers=admin,
                       json={"event": "approve"})
        t0 = time.perf_counter()
        merged = await api.post(f"/api/v1/tenants/fleet/pulls/{number}/merge", headers=operator)
        merges.append(time.perf_counter() - t0)
        assert merged.status_code == 200, merged.text
        git("fetch", "-q", "origin", cwd=work)
    print(f"push of one changed file -> accepted: median {_median(pushes)} ms ({_all(pushes)})")
    print(f"pull request opened -> checks complete ({affected} appliances previewed): "
          f"median {_median(opened)} ms ({_all(opened)}); server-side checks "
          f"{pull['checks']['duration_ms']:.0f} ms")
    print(f"merge (merge commit, CAS, reconcile queued): median {_median(merges)} ms "
          f"({_all(merges)})")


def _median(values: list[float]) -> str:
    return f"{sorted(values)[len(values) // 2] * 1000:.0f}"


def _all(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appliances", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
