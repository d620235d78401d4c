"""DNS record data in zone-file presentation form: one quoting of TXT, one rendering.

Two sides need the same text for a record: the executor writes it into the
zone file (``engine.execution.extravars``) and the planner compares desired
records with what named reports (``engine.planning.normalize``). If they
rendered differently, a record would show as drift forever though the box is
right, so both call this module (``docs/architecture.md``, "One of each").

TXT text is bytes on the wire (RFC 1035 character strings of at most 255
bytes). The canonical form quotes each string and writes printable ASCII as
itself (``"`` and ``\\`` escaped) and every other byte as ``\\DDD``, which is
what named prints: ``café`` is ``"caf\\195\\169"``.
"""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidInputError

TXT_STRING_BYTES = 255


def quote_txt_bytes(raw: bytes) -> str:
    """Bytes as zone-file character strings: quoted, escaped, in 255-byte pieces."""
    pieces = [raw[i:i + TXT_STRING_BYTES] for i in range(0, len(raw), TXT_STRING_BYTES)] or [b""]
    out = []
    for piece in pieces:
        escaped = []
        for byte in piece:
            char = chr(byte)
            if char in '"\\':
                escaped.append("\\" + char)
            elif 0x20 <= byte < 0x7F:
                escaped.append(char)
            else:
                escaped.append(f"\\{byte:03d}")
        out.append('"' + "".join(escaped) + '"')
    return " ".join(out)


def quote_txt(text: str) -> str:
    """A TXT record's text (UTF-8) in canonical presentation form."""
    if (len(text) <= TXT_STRING_BYTES and text.isascii() and text.isprintable()
            and '"' not in text and "\\" not in text):
        return f'"{text}"'  # the common case (SPF, DKIM, verification tokens), kept cheap
    return quote_txt_bytes(text.encode())


def parse_txt(data: str) -> bytes:
    """The concatenated bytes of presentation-form character strings (quoted or bare):
    ``\\DDD`` is one byte, ``\\X`` is X, anything else its UTF-8 bytes."""
    out = bytearray()
    index = 0
    length = len(data)
    while index < length:
        char = data[index]
        if char.isspace():
            index += 1
            continue
        quoted = char == '"'
        if quoted:
            index += 1
        while index < length:
            char = data[index]
            if quoted and char == '"':
                index += 1
                break
            if not quoted and char.isspace():
                break
            if char == "\\" and index + 1 < length:
                digits = data[index + 1:index + 4]
                if len(digits) == 3 and digits.isdigit() and int(digits) < 256:
                    out.append(int(digits))
                    index += 4
                    continue
                out += data[index + 1].encode()
                index += 2
                continue
            out += char.encode()
            index += 1
    return bytes(out)


def canonical_txt(data: str) -> str:
    """Observed TXT data in the form ``quote_txt`` gives desired text."""
    if (data.count('"') == 2 and data[0] == '"' and data[-1] == '"' and "\\" not in data
            and data.isascii() and data.isprintable() and len(data) <= TXT_STRING_BYTES + 2):
        return data  # already one plain quoted string: the common case, kept cheap
    return quote_txt_bytes(parse_txt(data))


def record_data(record: Any) -> str:
    """The rdata of a typed record (``schemas.config``) as the zone file holds it; names
    as the YAML wrote them (the zone file resolves relative ones)."""
    kind = record.type
    if kind in {"A", "AAAA"}:
        return str(record.address)
    if kind in {"CNAME", "PTR"}:
        return record.target
    if kind == "MX":
        return f"{record.priority} {record.exchange}"
    if kind == "SRV":
        return f"{record.priority} {record.weight} {record.port} {record.target}"
    if kind == "TXT":
        return quote_txt(record.text)
    raise InvalidInputError(f"unsupported record type {kind!r}")
