"""The normaliser's value rules, as literal tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.planning.normalize import (
    UNSET,
    _san,
    _sans,
    absolute_name,
    desired_record,
    presentation,
    renewal_due,
)
from schemas.config import AAAARecord, ARecord, CNAMERecord, MXRecord, SRVRecord, TXTRecord

ZONE = "example.com"

NAME_CASES = [
    ("@", "example.com."),
    ("www", "www.example.com."),
    ("WWW", "www.example.com."),
    ("www.example.com.", "www.example.com."),
    ("www.example.com", "www.example.com."),
    ("example.com", "example.com."),
    ("_sip._tcp", "_sip._tcp.example.com."),
    ("host.other.org.", "host.other.org."),
]


@pytest.mark.parametrize(("name", "absolute"), NAME_CASES, ids=[c[0] for c in NAME_CASES])
def test_absolute_name(name: str, absolute: str) -> None:
    assert absolute_name(name, ZONE) == absolute


# (id, desired record, observed (name, type, data) variants that must match it)
EQUIVALENT_RECORDS = [
    ("a-apex", ARecord(type="A", address="192.0.2.1"),
     [("@", "A", "192.0.2.1"), ("example.com.", "A", "192.0.2.1")]),
    ("aaaa-expanded", AAAARecord(type="AAAA", name="v6", address="2001:db8::1"),
     [("v6", "AAAA", "2001:0db8:0000:0000:0000:0000:0000:0001"),
      ("v6.example.com.", "AAAA", "2001:DB8::1")]),
    ("cname-relative-target", CNAMERecord(type="CNAME", name="www", target="web"),
     [("www", "CNAME", "web"), ("www.example.com.", "CNAME", "web.example.com."),
      ("WWW.Example.Com.", "CNAME", "WEB.example.com.")]),
    ("cname-absolute-target", CNAMERecord(type="CNAME", name="cdn", target="edge.cdn.net."),
     [("cdn", "CNAME", "edge.cdn.net.")]),
    ("mx", MXRecord(type="MX", priority=10, exchange="mail"),
     [("@", "MX", "10 mail"), ("example.com.", "MX", "10 mail.example.com."),
      ("@", "MX", "10   mail.example.com.")]),
    ("mx-absolute", MXRecord(type="MX", priority=20, exchange="mx.example.com."),
     [("example.com.", "MX", "20 mx.example.com.")]),
    ("txt-quoted", TXTRecord(type="TXT", text="v=spf1 mx -all"),
     [("@", "TXT", '"v=spf1 mx -all"'), ("@", "TXT", '"v=spf1 " "mx -all"')]),
    ("txt-escaped-quote", TXTRecord(type="TXT", name="q", text='say "hi"'),
     [("q", "TXT", '"say \\"hi\\""'), ("q", "TXT", '"say \\034hi\\034"')]),
    ("txt-long-split", TXTRecord(type="TXT", name="dkim", text="k" * 300),
     [("dkim", "TXT", '"' + "k" * 255 + '" "' + "k" * 45 + '"'),
      ("dkim", "TXT", '"' + "k" * 100 + '" "' + "k" * 200 + '"')]),
    ("txt-bare-word", TXTRecord(type="TXT", name="t", text="token"),
     [("t", "TXT", "token")]),
    ("srv", SRVRecord(type="SRV", name="_sip._tcp", priority=0, weight=5, port=5060,
                      target="sip"),
     [("_sip._tcp", "SRV", "0 5 5060 sip"),
      ("_sip._tcp.example.com.", "SRV", "0 5 5060 sip.example.com.")]),
]


@pytest.mark.parametrize(("record", "observed"), [c[1:] for c in EQUIVALENT_RECORDS],
                         ids=[c[0] for c in EQUIVALENT_RECORDS])
def test_desired_record_matches_presentation(record: object, observed: list) -> None:
    want = desired_record(ZONE, record)
    for name, type_, data in observed:
        assert presentation(ZONE, name, type_, data) == want, (name, data)


DIFFERENT_RECORDS = [
    ("mx-priority", MXRecord(type="MX", priority=10, exchange="mail"), ("@", "MX", "20 mail")),
    ("txt-case", TXTRecord(type="TXT", text="ABC"), ("@", "TXT", '"abc"')),
    ("cname-other-zone", CNAMERecord(type="CNAME", name="www", target="web"),
     ("www", "CNAME", "web.example.org.")),
]


@pytest.mark.parametrize(("record", "observed"), [c[1:] for c in DIFFERENT_RECORDS],
                         ids=[c[0] for c in DIFFERENT_RECORDS])
def test_different_records_stay_different(record: object, observed: tuple) -> None:
    assert presentation(ZONE, *observed) != desired_record(ZONE, record)


EXPIRY = datetime(2027, 1, 31, tzinfo=UTC)
RENEWAL_CASES = [
    ("well-before-window", datetime(2026, 12, 1, tzinfo=UTC), False),
    ("window-starts", datetime(2027, 1, 1, tzinfo=UTC), True),
    ("inside-window", datetime(2027, 1, 20, tzinfo=UTC), True),
    ("expired", datetime(2027, 3, 1, tzinfo=UTC), True),
]


@pytest.mark.parametrize(("now", "due"), [c[1:] for c in RENEWAL_CASES],
                         ids=[c[0] for c in RENEWAL_CASES])
def test_renewal_due(now: datetime, due: bool) -> None:
    assert renewal_due(EXPIRY, timedelta(days=30), now=now) is due


def test_unknown_expiry_is_not_due() -> None:
    assert not renewal_due(None, timedelta(days=30), now=EXPIRY)


def test_unset_compares_equal_to_anything() -> None:
    assert (1, UNSET) == (1, 1042)
    assert (1, 1042) == (1, UNSET)
    assert (2, UNSET) != (1, 1042)


SAN_CASES = [
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),  # how openssl prints it, as the agent reports
    ("2001:0db8::0:1", "2001:db8::1"),
    ("192.0.2.10", "192.0.2.10"),
    ("Mail.Example.COM", "mail.example.com"),
    (" www.example.com ", "www.example.com"),
]


@pytest.mark.parametrize(("san", "canonical"), SAN_CASES, ids=[c[0] for c in SAN_CASES])
def test_sans_are_compared_canonical(san: str, canonical: str) -> None:
    assert _san(san) == canonical


def test_an_ipv6_san_as_openssl_prints_it_is_not_drift() -> None:
    assert _sans("Box.Example", ["2001:DB8:0:0:0:0:0:1", "mail.example"]) == \
        _sans("box.example", ["2001:db8::1", "MAIL.example"]) == \
        ("2001:db8::1", "box.example", "mail.example")
