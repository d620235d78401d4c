"""The edge of every request: who the client is, what a body may be, what every answer carries.

Three pieces, each applied to the whole app so a route cannot forget them:

- ``ClientAddressMiddleware``: the client address the rate limits, the login
  throttle and the audit log see. ``X-Forwarded-For`` is believed only when
  the connection comes from an address in ``HEARTH_TRUSTED_PROXIES`` (default
  none), and then only the right-most entry not itself a trusted proxy is
  taken: a client cannot spoof its way out of a limit, and behind an ingress
  every client keeps its own bucket. ``hearth serve`` turns uvicorn's own
  proxy-header handling off, so this is the one place that reads the header.
- ``HearthRequest``: a JSON body is decoded only when the request says
  ``application/json`` (or ``…+json``; anything else is 415), and only when
  its nesting is at most ``MAX_JSON_DEPTH`` (400 otherwise). The decoder
  (msgspec) recurses per level and raises ``RecursionError`` on deep input,
  which used to reach the catch-all as a 500; the depth is bounded before
  decoding by a scan of the brackets outside strings, skipped when the body
  has fewer opening brackets than the bound (every heartbeat), so well-formed
  bodies pay one ``bytes.count`` pass.
- ``SecurityHeadersMiddleware``: ``X-Content-Type-Options: nosniff`` on every
  response, ``Cache-Control: no-store`` on every response that did not set its
  own (answers carry tokens, config and per-caller data; nothing here is
  meant for a shared cache), and on HTML a strict Content-Security-Policy and
  ``X-Frame-Options: DENY``. Inline scripts and styles of an HTML page are
  allowed by their SHA-256 hashes, computed from the page as sent, so the
  policy never needs ``'unsafe-inline'``; only the API reference pages under
  ``/schema`` may load their script bundles from ``DOCS_CDN``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.serialization import decode_json
from litestar.types import ASGIApp, Empty, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON body may have (Hearth's deepest document is
under 10 levels)."""
DOCS_CDN = "https://cdn.jsdelivr.net"
"""Where the Swagger UI and Scalar pages under /schema load their bundles from."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- client address -----------------------------------------------------------------


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_from_forwarded(peer: str, forwarded_for: str | None,
                          proxies: tuple[Network, ...]) -> str:
    """The client's address: ``peer`` unless ``peer`` is a trusted proxy, then the
    right-most ``X-Forwarded-For`` entry that is not a trusted proxy (entries to its
    left were written by the client and prove nothing)."""
    peer_ip = _address(peer)
    if not proxies or peer_ip is None or not forwarded_for \
            or not any(peer_ip in net for net in proxies):
        return peer
    for entry in reversed(forwarded_for.split(",")):
        ip = _address(entry)
        if ip is None:
            return peer  # a malformed chain: trust nothing in it
        if not any(ip in net for net in proxies):
            return str(ip)
    return peer


class ClientAddressMiddleware:
    """Rewrites ``scope["client"]`` from ``X-Forwarded-For`` when the peer is a trusted
    proxy; everything downstream (rate limits, login throttle, audit) reads the client."""

    def __init__(self, app: ASGIApp, proxies: Iterable[Network]) -> None:
        self.app = app
        self.proxies = tuple(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.proxies and scope["type"] in (ScopeType.HTTP, ScopeType.WEBSOCKET):
            client = scope.get("client")
            header = next((v.decode("latin-1") for k, v in scope["headers"]
                           if k == b"x-forwarded-for"), None)
            if client and header:
                address = client_from_forwarded(client[0], header, self.proxies)
                if address != client[0]:
                    scope = {**scope, "client": (address, 0)}  # type: ignore[misc]
        await self.app(scope, receive, send)


# --- bodies ---------------------------------------------------------------------------


class UnsupportedMediaTypeException(ClientException):
    status_code = 415


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``body`` nests arrays/objects deeper than ``limit`` (brackets inside
    strings do not count). Cheap when it cannot: fewer opening brackets than the limit."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    # strings out first (they may hold brackets), then everything but brackets
    for char in _STRING.sub(b"", body).translate(None, _BRACKETS):
        if char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def is_json_media_type(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


class HearthRequest(Request[Any, Any, Any]):
    """Litestar's request with a guarded ``json()`` (see the module docstring)."""

    async def json(self) -> Any:
        if self._json is not Empty:
            return self._json
        if (cached := self._connection_state.json) is not Empty:
            self._json = cached
            return cached
        body = await self.body()
        if body:
            content_type = self.headers.get("content-type", "")
            if not is_json_media_type(content_type):
                raise UnsupportedMediaTypeException(
                    detail="this route takes a JSON body: send Content-Type: application/json")
            if json_depth_exceeds(body):
                raise ClientException(
                    detail=f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            value = decode_json(body or b"null",
                                type_decoders=self.route_handler.resolve_type_decoders())
        except RecursionError:  # the scan above makes this unreachable; kept as the floor
            raise ClientException(detail="the JSON body nests too deeply") from None
        self._json = self._connection_state.json = value
        return value


# --- response headers ------------------------------------------------------------------


def _csp(path: str, html: bytes) -> str:
    scripts = _inline_hashes(html, b"script")
    styles = _inline_hashes(html, b"style")
    cdn = f" {DOCS_CDN}" if path.startswith("/schema") else ""
    return ("default-src 'none'; "
            f"script-src 'self'{cdn}{scripts}; "
            f"style-src 'self'{cdn}{styles}; "
            f"img-src 'self' data:{cdn}; font-src 'self'{cdn}; connect-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _inline_hashes(html: bytes, tag: bytes) -> str:
    pattern = re.compile(rb"<" + tag + rb"(?![^>]*\bsrc=)[^>]*>(.*?)</" + tag + rb">",
                         re.DOTALL | re.IGNORECASE)
    hashes = {base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()
              for m in pattern.finditer(html) if m.group(1).strip()}
    return "".join(f" 'sha256-{h}'" for h in sorted(hashes))


class SecurityHeadersMiddleware:
    """Adds the headers of the module docstring to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        html: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"x-content-type-options", b"x-frame-options")]
                names = {k.lower() for k, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                message = {**message, "headers": headers}
                if content_type.lower().startswith(b"text/html"):
                    start = message  # held until the page is complete: its CSP hashes it
                    return
            elif start is not None and message["type"] == "http.response.body":
                html.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                page = b"".join(html)
                headers = [(k, v) for k, v in start["headers"]
                           if k.lower() not in (b"content-security-policy", b"content-length")]
                headers += [(b"content-security-policy", _csp(scope["path"], page).encode()),
                            (b"x-frame-options", b"DENY"),
                            (b"content-length", str(len(page)).encode())]
                await send({**start, "headers": headers})
                message = {"type": "http.response.body", "body": page, "more_body": False}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)

