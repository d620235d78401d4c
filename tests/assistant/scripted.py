"""A loopback server speaking Ollama's chat API with scripted replies (tests only).

The assistant reaches it through the real ``ollama`` client, so the request it
sends (model, messages, ``format``, options) is what Ollama would get; the test
reads ``requests`` to check it. ``replies`` is consumed in order: a string is
the reply's content, an int answers with that HTTP status.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedOllama:
    def __init__(self, port: int = 0) -> None:
        self.replies: list[str | int] = []
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                reply = outer.replies.pop(0) if outer.replies else 500
                if isinstance(reply, int):
                    data = json.dumps({"error": "scripted failure"}).encode()
                    self.send_response(reply)
                else:
                    data = json.dumps({
                        "model": body.get("model"), "created_at": "2026-01-01T00:00:00Z",
                        "message": {"role": "assistant", "content": reply},
                        "done": True, "done_reason": "stop"}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
