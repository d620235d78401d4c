"""Heartbeat throughput and latency of the real server, over loopback, on real PostgreSQL.

    python tests/benchmarks/bench_heartbeat.py [--appliances 2000] [--seconds 15]

What it does, in one run:

1. makes a fresh PostgreSQL database and a tenant repo (from example-config-repo),
   registers ``--appliances`` appliances with their own tokens;
2. starts ``hearth serve --workers 2`` (uvicorn, uvloop + httptools) on a free port;
3. drives it from a separate load-generator process (asyncio + uvloop, raw HTTP/1.1
   keep-alive, so the generator costs as little CPU as possible):
   - the bare endpoint the goal compares with: a separate Litestar app with one POST
     route taking the same ~1 KiB JSON body (``bare_app.py``), served the same way
     (uvicorn, 2 workers, uvloop + httptools), closed loop, 256 connections; and, for
     reference, Hearth's own ``GET /health``;
   - heartbeats, closed loop, 256 connections, each request a different token in turn,
     sequences increasing per token (sustained throughput);
   - heartbeats at a fixed 2,000/s, open loop, latency measured from the scheduled
     send time (no coordinated omission);
4. checks durability: for every token, the sequence PostgreSQL holds equals the last
   one the server answered 200 for;
5. prints requests/s, p50/p99 latency, non-200 answers, and the load generator's CPU
   share (its CPU seconds over wall seconds x cores).

Goals (issue 3): >= 4,000 heartbeats/s sustained; p99 < 50 ms at 2,000/s; heartbeat
rate at least half the bare endpoint's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PG = os.environ.get("HEARTH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("HEARTH_BENCH_REDIS", "redis://127.0.0.1:6379/10")

OBSERVED = json.dumps({
    "users": {"users": [{"name": f"user{i}", "uid": 1000 + i, "full_name": f"User {i}",
                         "groups": ["staff"], "shell": "/bin/bash"} for i in range(4)],
              "groups": [{"name": "staff", "gid": 1000}]},
    "dns": {"zones": [{"name": "example.org", "serial": 2024010101, "records": [
        {"name": f"host{i}", "type": "A", "data": f"192.0.2.{i}"} for i in range(4)]}]},
}, separators=(",", ":"))


# --------------------------------------------------------------------------- load generator


def _request(path: str, body: bytes | None, token: str | None, port: int) -> bytes:
    head = [f"{'POST' if body is not None else 'GET'} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _loadgen(args: dict) -> dict:
    port, mode, seconds = args["port"], args["mode"], args["seconds"]
    conns, rate = args["connections"], args.get("rate")
    tokens: list[str] = args.get("tokens", [])
    sequences: list[int] = args.get("sequences", [0] * len(tokens))
    last_ok: dict[int, int] = {}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter() + 0.2
    stop = start + seconds

    def heartbeat_body(sequence: int, path: str, token: str | None = None) -> bytes:
        now = datetime.now(UTC).isoformat()
        body = (f'{{"sequence":{sequence},"sent_at":"{now}","agent_version":"bench",'
                f'"services":[{{"name":"named","status":"running"}}],'
                f'"facts":{{"kernel":"6.1"}},"observed":{OBSERVED}}}').encode()
        return _request(path, body, token, port)

    def heartbeat(i: int) -> bytes:
        sequences[i] += 1
        return heartbeat_body(sequences[i], "/api/v1/heartbeat", tokens[i])

    async def connection(n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        mine = list(range(n, len(tokens), conns)) or [None]
        k = 0
        interval = conns / rate if rate else 0.0
        scheduled = start + (n / conns) * interval
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        while True:
            now = time.perf_counter()
            if rate:
                if scheduled > now:
                    await asyncio.sleep(scheduled - now)
                t0 = scheduled
                scheduled += interval
            else:
                t0 = now
            if t0 >= stop:
                break
            if mode == "health":
                token_index, data = None, _request("/health", None, None, port)
            elif mode == "echo":
                token_index, data = None, heartbeat_body(n, "/echo")
            else:
                token_index = mine[k % len(mine)]
                k += 1
                data = heartbeat(token_index)
            writer.write(data)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200 and token_index is not None:
                last_ok[token_index] = sequences[token_index]
        writer.close()

    cpu0 = os.times()
    await asyncio.gather(*(connection(n) for n in range(conns)))
    cpu1 = os.times()
    wall = time.perf_counter() - start
    latencies.sort()
    ok = statuses.get(200, 0)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies \
            else float("nan")

    return {"ok_per_s": ok / wall, "requests": len(latencies), "statuses": statuses,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "cpu_share": ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system))
            / wall / (os.cpu_count() or 1),
            "sequences": sequences, "last_ok": last_ok}


def loadgen_main() -> None:
    import uvloop

    args = json.loads(sys.stdin.read())
    result = uvloop.run(_loadgen(args))
    json.dump(result, sys.stdout)


def _cpu_ticks(root: int) -> float:
    """CPU seconds used so far by process ``root`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


SERVER_PID = 0


def run_loadgen(**args: object) -> dict:
    server0, (busy0, total0) = _cpu_ticks(SERVER_PID), _machine_busy()
    proc = subprocess.run([sys.executable, __file__, "--loadgen"], input=json.dumps(args),
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    busy1, total1 = _machine_busy()
    wall = (total1 - total0) / (os.cpu_count() or 1)
    server_cpu = _cpu_ticks(SERVER_PID) - server0
    result["server_share"] = server_cpu / wall / (os.cpu_count() or 1)
    result["server_ms_per_ok"] = server_cpu * 1000 / max(result["statuses"].get("200", 0), 1)
    result["machine_share"] = (busy1 - busy0) / (total1 - total0)
    return result


# --------------------------------------------------------------------------- set-up


async def _setup(dsn: str, repos_dir: Path, count: int, secret_key: str) -> list[str]:
    from engine.db import appliances, tenants
    from engine.db.migrate import apply_migrations
    from engine.db.pool import connect
    from engine.repos.store import RepoStore, signature

    await apply_migrations(dsn)
    RepoStore(repos_dir).create("bench", ROOT / "example-config-repo",
                                author=signature("Bench", "bench@example.org"))
    conn = await connect(dsn)
    try:
        tenant = await tenants.insert_tenant(conn, name="bench", display_name="Bench")
        tokens = []
        for i in range(count):
            _, token = await appliances.register_appliance(
                conn, tenant_id=tenant["id"], name=f"box-{i:05d}", hostname=None,
                secret_key=secret_key)
            tokens.append(token)
        return tokens
    finally:
        await conn.close()


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _stored_sequences(dsn: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("""SELECT a.name, o.sequence FROM observed_latest o
                                     JOIN appliances a ON a.id = o.appliance_id""")
        return {r["name"]: r["sequence"] for r in rows}
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _report(name: str, result: dict) -> None:
    others = {k: v for k, v in result["statuses"].items() if str(k) != "200"}
    print(f"{name:<34} {result['ok_per_s']:>8.0f}/s  p50 {result['p50_ms']:6.1f} ms  "
          f"p99 {result['p99_ms']:6.1f} ms  max {result['max_ms']:6.1f} ms  "
          f"loadgen CPU {result['cpu_share']:.0%}  server CPU {result['server_share']:.0%} "
          f"({result['server_ms_per_ok']:.2f} ms/req)  "
          f"machine busy {result['machine_share']:.0%}  non-200 {others or 0}")


def main() -> int:
    print(f"load before the run: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} (1/5/15 min)")
    parser = argparse.ArgumentParser()
    parser.add_argument("--appliances", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    db = "hearth_bench_" + secrets.token_hex(4)
    work = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    dsn = PG.rsplit("/", 1)[0] + "/" + db
    env = {**os.environ, "DATABASE_URL": dsn, "REDIS_URL": REDIS,
           "OLLAMA_API_URL": "http://127.0.0.1:9", "SECRET_KEY": secrets.token_hex(32),
           "JWT_SECRET": secrets.token_hex(32), "ANSIBLE_VAULT_PASSWORD": secrets.token_hex(16),
           "REPOS_DIR": str(work / "repos"), "HEARTH_DATA_DIR": str(work / "data"),
           "HEARTH_LOG_LEVEL": "WARNING"}
    asyncio.run(_admin(f'CREATE DATABASE "{db}"'))
    server = None
    try:
        t0 = time.perf_counter()
        tokens = asyncio.run(_setup(dsn, work / "repos", args.appliances, env["SECRET_KEY"]))
        print(f"registered {len(tokens)} appliances in {time.perf_counter() - t0:.1f} s")
        import redis

        redis.Redis.from_url(REDIS).flushdb()
        port = _free_port()
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/hearth"), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(args.workers)], env=env, cwd=ROOT)
        global SERVER_PID
        SERVER_PID = server.pid
        import httpx

        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("server did not become ready")
        print(f"server: hearth serve --workers {args.workers} on 127.0.0.1:{port}; "
              f"{os.cpu_count()} cores shared with the load generator")
        common = {"port": port, "connections": args.connections, "seconds": args.seconds}
        bare_port = _free_port()
        bare_server = subprocess.Popen(
            [str(ROOT / ".venv/bin/uvicorn"), "--app-dir", str(Path(__file__).parent),
             "bare_app:app", "--host", "127.0.0.1", "--port", str(bare_port), "--workers",
             str(args.workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
             "--log-level", "warning"], cwd=ROOT)
        try:
            for _ in range(200):
                try:
                    httpx.post(f"http://127.0.0.1:{bare_port}/echo", json={"sequence": 1})
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            bare_common = common | {"port": bare_port, "mode": "echo"}
            run_loadgen(**bare_common | {"seconds": 2})  # warm-up
            bare = run_loadgen(**bare_common)
            _report(f"POST /echo bare Litestar, {len(OBSERVED) + 150} B JSON", bare)
        finally:
            bare_server.terminate()
            bare_server.wait(20)
        run_loadgen(**common | {"mode": "health", "seconds": 2})  # warm-up
        health = run_loadgen(**common | {"mode": "health"})
        _report("GET /health (Hearth, no body)", health)
        sustained = run_loadgen(**common | {"mode": "heartbeat", "tokens": tokens})
        _report("POST /api/v1/heartbeat (closed)", sustained)
        paced = run_loadgen(**common | {"mode": "heartbeat", "tokens": tokens, "rate": 2000,
                                        "sequences": sustained["sequences"]})
        _report("POST /api/v1/heartbeat @2000/s", paced)

        stored = asyncio.run(_stored_sequences(dsn))
        expected = {f"box-{int(i):05d}": seq for i, seq in
                    (sustained["last_ok"] | paced["last_ok"]).items()}
        lost = {k: (v, stored.get(k)) for k, v in expected.items() if stored.get(k) != v}
        print(f"durability: {len(expected)} appliances, last acknowledged sequence stored "
              f"for {len(expected) - len(lost)}; mismatches {len(lost)}")
        ratio = sustained["ok_per_s"] / bare["ok_per_s"]
        print(f"\nheartbeats/s sustained {sustained['ok_per_s']:.0f} (goal >= 4000): "
              f"{'PASS' if sustained['ok_per_s'] >= 4000 else 'FAIL'}")
        print(f"p99 at 2000/s {paced['p99_ms']:.1f} ms (goal < 50 ms): "
              f"{'PASS' if paced['p99_ms'] < 50 else 'FAIL'}")
        print(f"heartbeat / bare rate {ratio:.0%} (goal >= 50%): "
              f"{'PASS' if ratio >= 0.5 else 'FAIL'}")
        return 0 if not lost else 1
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--loadgen"]:
        loadgen_main()
    else:
        sys.exit(main())
