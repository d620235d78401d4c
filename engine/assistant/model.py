"""The model client: one structured chat call to an Ollama-compatible endpoint.

Through the official ``ollama`` client (which has no timeout unless given one), with
``format=`` the reply's JSON Schema (``schemas.intents.reply_format_schema``),
temperature 0 and a capped ``num_predict``. Transport failures (refused connection,
timeout, a 5xx) are retried a bounded number of times and then raised as
``ModelUnavailable``: the caller keeps the request and tries again later. A reply
that is not valid JSON of ``ModelReply`` is not an error of the transport: it comes
back as ``Proposal(reply=None, problem=...)`` and the caller handles it safely.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import ollama
from pydantic import ValidationError

from schemas.intents import ModelReply, reply_format_schema

NUM_PREDICT = 400
"""Tokens the model may generate for one reply (bounded strings fit well inside)."""


class ModelUnavailable(Exception):
    """The endpoint did not answer usefully (down, timed out, server error)."""


@dataclass(frozen=True, slots=True)
class Proposal:
    reply: ModelReply | None
    raw: str
    problem: str | None
    seconds: float


class ModelClient:
    def __init__(self, *, host: str, model: str, timeout: float = 60.0, retries: int = 2,
                 retry_delay: float = 0.5, num_predict: int = NUM_PREDICT) -> None:
        self.host = host
        self.model = model
        self.retries = retries
        self.retry_delay = retry_delay
        self.num_predict = num_predict
        self._client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(timeout, connect=5.0))
        self._format = reply_format_schema()

    async def aclose(self) -> None:
        await self._client._client.aclose()  # the ollama client has no close of its own

    async def propose(self, messages: list[dict[str, str]]) -> Proposal:
        started = time.perf_counter()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.retry_delay * attempt)
            try:
                response = await self._client.chat(
                    model=self.model, messages=messages, format=self._format, stream=False,
                    options={"temperature": 0, "num_predict": self.num_predict, "seed": 0})
            except ollama.ResponseError as exc:
                if exc.status_code < 500 and exc.status_code not in (408, 429):
                    raise ModelUnavailable(f"the model endpoint refused the call: "
                                           f"{exc.status_code} {exc.error}"[:300]) from None
                last = exc
                continue
            except (httpx.HTTPError, ConnectionError, OSError) as exc:
                last = exc
                continue
            raw = response.message.content or ""
            seconds = time.perf_counter() - started
            try:
                return Proposal(ModelReply.model_validate_json(raw), raw, None, seconds)
            except ValidationError as exc:
                problem = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}"
                    for e in exc.errors()[:5])
                return Proposal(None, raw, problem[:500], seconds)
        raise ModelUnavailable(f"no answer from {self.host} after {self.retries + 1} tries: "
                               f"{type(last).__name__}: {last}"[:300])
