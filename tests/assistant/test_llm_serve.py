"""The contract of ``hearth llm serve`` with the real small model (SmolLM2-135M) behind it.

The model is weak, so these tests check the contract, not accuracy: the endpoint
answers the ``ollama`` client's calls; a structured chat with ``format=`` the
reply schema either validates or comes back as a clean parse problem, and either
way ``decide`` turns it into an answer, a question, a refusal or a change, never
an exception; streaming ``/api/generate`` yields NDJSON chunks and a final
``done``. Generation is capped (``--max-predict``) to keep the runs short.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from engine.assistant.decide import Answer, Change, Question, Refusal, decide
from engine.assistant.model import ModelClient
from engine.assistant.prompt import build_messages, tenant_facts
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore, signature
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def llm() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "llm", "serve", "--port", str(port),
         "--max-predict", "300", "--context", "4096"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/api/version", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "hearth llm serve exited"
            assert time.monotonic() < deadline, "hearth llm serve did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_tags_version_and_streaming_generate(llm: str) -> None:
    client = ollama.Client(host=llm, timeout=httpx.Timeout(60))
    try:
        check_endpoint(client, llm)
    finally:
        client._client.close()


def check_endpoint(client: ollama.Client, llm: str) -> None:
    assert [m.model for m in client.list().models] == ["smollm2:135m"]
    assert httpx.get(llm + "/api/version").json() == {"version": "0.9.0"}
    assert client.show("smollm2:135m").details.parameter_size == "135M"
    parts = list(client.generate(model="smollm2:135m", prompt="Say hello.", stream=True,
                                 options={"num_predict": 6, "temperature": 0}))
    assert parts[-1].done is True
    assert all(p.done is False for p in parts[:-1])
    assert len(parts) >= 2
    assert "".join(p.response for p in parts).strip() != ""


async def test_structured_reply_validates_or_is_handled(llm: str, tmp_path: Path) -> None:
    store = RepoStore(tmp_path)
    head = store.create("acme", ROOT / "example-config-repo",
                        author=signature("t", "t@example.org"))
    config = SnapshotReader().load(store.open("acme"), head, tenant="acme").config
    messages = build_messages(message="Please add Maria Lopez (maria@brightsmile.example) "
                                      "to the reception team.",
                              facts=tenant_facts(config), appliance=None, history=[])
    model = ModelClient(host=llm, model="smollm2:135m", timeout=120, retries=0)
    started = time.perf_counter()
    try:
        proposal = await model.propose(messages)
    finally:
        await model.aclose()
    seconds = time.perf_counter() - started
    assert proposal.raw.lstrip().startswith("{")
    assert (proposal.reply is None) == (proposal.problem is not None)
    decision = decide(proposal.reply, config=config, role="customer", problem=proposal.problem)
    assert isinstance(decision, Answer | Question | Refusal | Change)
    print(f"\nreal small model: {seconds:.1f}s, "
          f"{'valid ' + proposal.reply.kind if proposal.reply else 'invalid: ' + str(proposal.problem)}"
          f" -> {type(decision).__name__}")
