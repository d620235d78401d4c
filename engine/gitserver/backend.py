"""The CGI bridge to ``git http-backend``: one process per request, streamed both ways.

``run_backend`` starts ``git http-backend`` with the CGI variables git needs
(``GIT_PROJECT_ROOT``, ``PATH_INFO``, ``REQUEST_METHOD``, ``QUERY_STRING``,
``CONTENT_TYPE``, ``REMOTE_USER``, ``GIT_HTTP_EXPORT_ALL``; a gzip
``Content-Encoding`` is passed as ``HTTP_CONTENT_ENCODING`` and git inflates
it itself). The request body is copied into the process's stdin chunk by
chunk while its stdout is read, so a 50 MB push never sits in memory: at most
a pipe buffer and one chunk do. The CGI header block is parsed into a status
and headers; the rest of stdout is handed back as an async iterator.

Pushes run the hook in ``hooks/`` through ``core.hooksPath`` (set in the
environment, so no repository needs hooks installed); the hook gets the
decision for ``main`` in ``HEARTH_MAIN_PUSH`` (``engine.gitserver.policy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("hearth.git")

HOOKS_DIR = Path(__file__).with_name("hooks")
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class BackendRequest:
    repos_dir: Path
    path_info: str
    """``/<tenant>.git/<rest>``."""
    method: str
    query: str
    content_type: str
    content_encoding: str
    remote_user: str
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class BackendResponse:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]


def _environment(request: BackendRequest) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(request.repos_dir),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": request.path_info,
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query,
        "CONTENT_TYPE": request.content_type,
        "REMOTE_USER": request.remote_user,
        "REMOTE_ADDR": "127.0.0.1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(request.repos_dir),
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(HOOKS_DIR),
        "GIT_CONFIG_KEY_1": "http.receivepack", "GIT_CONFIG_VALUE_1": "true",
        # git refuses repositories owned by someone else (CVE-2022-24765); they are ours
        "GIT_CONFIG_KEY_2": "safe.directory", "GIT_CONFIG_VALUE_2": "*",
        "HEARTH_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(p for p in (str(_PROJECT_ROOT),
                                                  os.environ.get("PYTHONPATH")) if p),
        **request.extra_env,
    }
    if request.content_encoding:
        env["HTTP_CONTENT_ENCODING"] = request.content_encoding
    return env


async def run_backend(request: BackendRequest, body: AsyncIterator[bytes]) -> BackendResponse:
    """Start ``git http-backend`` for ``request`` and stream ``body`` into it."""
    process = await asyncio.create_subprocess_exec(
        "git", "http-backend", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_environment(request), limit=CHUNK)
    assert process.stdin and process.stdout and process.stderr

    async def pump() -> None:
        stdin = process.stdin
        assert stdin is not None
        try:
            async for chunk in body:
                stdin.write(chunk)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # git stopped reading (it answered an error); its output says why
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.close()

    errors: list[bytes] = []

    async def drain_stderr() -> None:
        stderr = process.stderr
        assert stderr is not None
        while chunk := await stderr.read(CHUNK):
            if sum(map(len, errors)) < 16_384:
                errors.append(chunk)

    pumping = asyncio.create_task(pump())
    draining = asyncio.create_task(drain_stderr())
    try:
        status, headers, first = await _read_headers(process.stdout)
    except BaseException:
        pumping.cancel()
        draining.cancel()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise

    async def stream() -> AsyncIterator[bytes]:
        stdout = process.stdout
        assert stdout is not None
        try:
            if first:
                yield first
            while chunk := await stdout.read(CHUNK):
                yield chunk
            await pumping
            await draining
            code = await process.wait()
            if code != 0:
                log.warning("git http-backend exited %s: %s", code,
                            b"".join(errors).decode(errors="replace")[:2000])
        finally:
            if process.returncode is None:
                pumping.cancel()
                draining.cancel()
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    return BackendResponse(status=status, headers=headers, body=stream())


async def _read_headers(stdout: asyncio.StreamReader
                        ) -> tuple[int, list[tuple[str, str]], bytes]:
    """The CGI header block (``Status:`` and the rest) and any body bytes read with it."""
    buffer = b""
    while True:
        for separator in (b"\r\n\r\n", b"\n\n"):
            end = buffer.find(separator)
            if end >= 0:
                break
        if end >= 0:
            break
        chunk = await stdout.read(CHUNK)
        if not chunk:
            return 502, [("content-type", "text/plain")], b"git http-backend gave no answer\n"
        buffer += chunk
        if len(buffer) > 65_536:
            return 502, [("content-type", "text/plain")], b"git http-backend: bad header\n"
    head, rest = buffer[:end], buffer[end + len(separator):]
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip().lower(), value.strip()))
    return status, headers, rest
