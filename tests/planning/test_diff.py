"""``diff_domain`` on hand-made canonical domains: every item compared whole, with literals.

test_plan.py drives the planner from YAML and heartbeat fixtures and checks
which items come out; here each rule of ``engine.planning.diff`` is fed the
smallest canonical input that exercises it, and the full ``DiffItem`` (before,
after, reason, managed) is written out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.planning.diff import diff_domain
from engine.planning.normalize import UNSET, CanonicalDomain
from schemas.plan import DiffItem

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
ALICE = ("users", "alice")
ALICE_VALUES = ("Alice A", ("staff",), "/bin/bash", (), 1001, True)
ALICE_JSON = {"full_name": "Alice A", "groups": ["staff"], "shell": "/bin/bash", "ssh_keys": [],
              "uid": 1001, "has_password": True}
BOB = ("users", "bob")
BOB_VALUES = ("Bob B", (), "/bin/sh", (), 1002, False)
BOB_JSON = {"full_name": "Bob B", "groups": [], "shell": "/bin/sh", "ssh_keys": [], "uid": 1002,
            "has_password": False}
WEB = ("certificates", "web")
WEB_VALUES = ("web.example.org", ("web.example.org",), "rsa", True, ("nginx",))


def _diff(desired: CanonicalDomain, observed: CanonicalDomain, *, domain: str = "users",
          managed: frozenset = frozenset(), prune: bool = False):
    return diff_domain(domain, desired, observed, managed=managed, prune=prune, now=NOW)


def test_a_failed_probe_claims_nothing() -> None:
    desired = CanonicalDomain(objects={ALICE: ALICE_VALUES})
    assert _diff(desired, CanonicalDomain(known=False, running=False)) == ([], [])


def test_the_same_content_has_no_items() -> None:
    same = CanonicalDomain(settings={"forwarders": ("9.9.9.9",)}, objects={ALICE: ALICE_VALUES})
    assert _diff(same, CanonicalDomain(settings={"forwarders": ("9.9.9.9",)},
                                       objects={ALICE: ALICE_VALUES})) == ([], [])


def test_a_stopped_service_is_an_add_at_the_domain_and_every_object_missing() -> None:
    items, extras = _diff(CanonicalDomain(objects={ALICE: ALICE_VALUES}),
                          CanonicalDomain(running=False))
    assert items == [
        DiffItem(domain="users", operation="add", path=(), reason="not running"),
        DiffItem(domain="users", operation="add", path=ALICE, after=ALICE_JSON, reason="missing"),
    ]
    assert extras == []


def test_a_differing_setting_is_a_modify_with_before_and_after() -> None:
    items, extras = _diff(
        CanonicalDomain(settings={"forwarders": ("1.1.1.1", "9.9.9.9"), "ca_common_name": "CA"}),
        CanonicalDomain(settings={"forwarders": ("8.8.8.8",), "ca_common_name": "CA"}),
        domain="dns")
    assert items == [DiffItem(domain="dns", operation="modify", path=("forwarders",),
                              before=["8.8.8.8"], after=["1.1.1.1", "9.9.9.9"], reason="differs")]
    assert extras == []


def test_a_setting_the_box_lacks_has_before_none() -> None:
    items, _ = _diff(CanonicalDomain(settings={"ca_common_name": "Office CA"}),
                     CanonicalDomain(), domain="pki")
    assert items == [DiffItem(domain="pki", operation="modify", path=("ca_common_name",),
                              before=None, after="Office CA", reason="differs")]


def test_a_differing_object_is_one_modify_per_field_in_field_order() -> None:
    have = ("Alice", ("staff", "wheel"), "/bin/bash", (), 1001, True)
    items, extras = _diff(CanonicalDomain(objects={ALICE: ALICE_VALUES}),
                          CanonicalDomain(objects={ALICE: have}))
    assert items == [
        DiffItem(domain="users", operation="modify", path=(*ALICE, "full_name"),
                 before="Alice", after="Alice A", reason="differs"),
        DiffItem(domain="users", operation="modify", path=(*ALICE, "groups"),
                 before=["staff", "wheel"], after=["staff"], reason="differs"),
    ]
    assert extras == []


def test_an_unset_field_is_equal_to_anything() -> None:
    want = ("Alice A", ("staff",), UNSET, (), UNSET, True)
    have = ("Alice A", ("staff",), "/bin/zsh", (), 4242, True)
    assert _diff(CanonicalDomain(objects={ALICE: want}),
                 CanonicalDomain(objects={ALICE: have})) == ([], [])


def test_an_implied_object_satisfies_a_desired_one() -> None:
    group = ("groups", "alice")
    items, extras = _diff(
        CanonicalDomain(objects={ALICE: ALICE_VALUES, group: (1001,)}),
        CanonicalDomain(objects={ALICE: ALICE_VALUES}, implied={group: (1001,)}))
    assert (items, extras) == ([], [])
    items, _ = _diff(
        CanonicalDomain(objects={ALICE: ALICE_VALUES, group: (1001,)}),
        CanonicalDomain(objects={ALICE: ALICE_VALUES}, implied={group: (2002,)}))
    assert items == [DiffItem(domain="users", operation="modify", path=(*group, "gid"),
                              before=2002, after=1001, reason="differs")]


def test_a_missing_object_is_an_add_of_the_whole_object() -> None:
    items, extras = _diff(CanonicalDomain(objects={ALICE: ALICE_VALUES, BOB: BOB_VALUES}),
                          CanonicalDomain(objects={ALICE: ALICE_VALUES}))
    assert items == [DiffItem(domain="users", operation="add", path=BOB, after=BOB_JSON,
                              reason="missing")]
    assert extras == []


def test_an_object_of_the_wrong_shape_is_an_error_not_a_partial_diff() -> None:
    with pytest.raises(ValueError, match="zip"):
        _diff(CanonicalDomain(objects={ALICE: ALICE_VALUES}),
              CanonicalDomain(objects={ALICE: ("Alice",)}))


def _pki(not_after: datetime | None, *, window: timedelta | None = timedelta(days=30)):
    desired = CanonicalDomain(objects={WEB: WEB_VALUES},
                              deadlines={} if window is None else {WEB: window})
    observed = CanonicalDomain(objects={WEB: WEB_VALUES},
                               deadlines={} if not_after is None else {WEB: not_after})
    return _diff(desired, observed, domain="pki")


def test_a_certificate_inside_its_renewal_window_is_renewed() -> None:
    items, extras = _pki(datetime(2030, 6, 20, tzinfo=UTC))
    assert items == [DiffItem(domain="pki", operation="modify", path=(*WEB, "not_after"),
                              before="2030-06-20T00:00:00+00:00", after=None,
                              reason="renewal due")]
    assert extras == []


@pytest.mark.parametrize(("not_after", "window"), [
    (datetime(2030, 8, 1, tzinfo=UTC), timedelta(days=30)),
    (None, timedelta(days=30)),
    (datetime(2030, 6, 20, tzinfo=UTC), None),
], ids=["outside-the-window", "no-expiry-observed", "no-window-desired"])
def test_no_renewal(not_after, window) -> None:
    assert _pki(not_after, window=window) == ([], [])


def test_an_absent_object_that_is_present_is_removed_whatever_the_prune_policy() -> None:
    desired = CanonicalDomain(objects={ALICE: ALICE_VALUES}, absent=frozenset({BOB}))
    observed = CanonicalDomain(objects={ALICE: ALICE_VALUES, BOB: BOB_VALUES})
    items, extras = _diff(desired, observed, prune=False)
    assert items == [DiffItem(domain="users", operation="remove", path=BOB, before=BOB_JSON,
                              reason="absent")]
    assert extras == []
    assert _diff(desired, CanonicalDomain(objects={ALICE: ALICE_VALUES})) == ([], [])


@pytest.mark.parametrize(("managed", "prune", "items", "extras"), [
    (True, True, [DiffItem(domain="users", operation="remove", path=BOB, before=BOB_JSON,
                           reason="pruned")], []),
    (True, False, [], [DiffItem(domain="users", operation="remove", path=BOB, before=BOB_JSON,
                                reason="extra", managed=True)]),
    (False, True, [], [DiffItem(domain="users", operation="remove", path=BOB, before=BOB_JSON,
                                reason="extra", managed=False)]),
    (False, False, [], [DiffItem(domain="users", operation="remove", path=BOB, before=BOB_JSON,
                                 reason="extra", managed=False)]),
], ids=["managed-prune", "managed-no-prune", "unmanaged-prune", "unmanaged-no-prune"])
def test_an_undesired_object(managed, prune, items, extras) -> None:
    result = _diff(CanonicalDomain(objects={ALICE: ALICE_VALUES}),
                   CanonicalDomain(objects={ALICE: ALICE_VALUES, BOB: BOB_VALUES}),
                   managed=frozenset({BOB}) if managed else frozenset(), prune=prune)
    assert result == (items, extras)


def test_records_of_an_undesired_zone_are_covered_by_the_zone() -> None:
    zone = ("zones", "old.example")
    record = ("zones", "old.example", "records", "www.old.example. A 192.0.2.1")
    kept_zone = ("zones", "office.example")
    kept_record = ("zones", "office.example", "records", "mx.office.example. A 192.0.2.9")
    desired = CanonicalDomain(objects={kept_zone: (True,)})
    observed = CanonicalDomain(objects={kept_zone: (True,), kept_record: (300,), zone: (True,),
                                        record: (300,)})
    items, extras = _diff(desired, observed, domain="dns")
    # The kept zone's file is written whole from the YAML: its stray record goes (rule 6).
    assert items == [DiffItem(domain="dns", operation="remove", path=kept_record,
                              before={"ttl": 300}, reason="not in zone")]
    assert extras == [
        DiffItem(domain="dns", operation="remove", path=zone, before={"valid": True},
                 reason="extra", managed=False),
    ]


def test_an_absent_key_is_never_also_an_extra() -> None:
    desired = CanonicalDomain(absent=frozenset({BOB}))
    observed = CanonicalDomain(objects={BOB: BOB_VALUES})
    items, extras = _diff(desired, observed, managed=frozenset({BOB}), prune=True)
    assert items == [DiffItem(domain="users", operation="remove", path=BOB, before=BOB_JSON,
                              reason="absent")]
    assert extras == []


def test_a_record_of_an_undesired_zone_does_not_hide_the_objects_after_it() -> None:
    zone = ("zones", "old.example")
    record = ("zones", "old.example", "records", "www.old.example. A 192.0.2.1")
    other = ("zones", "other.example")
    observed = CanonicalDomain(objects={zone: (True,), record: (300,), other: (True,)})
    items, extras = _diff(CanonicalDomain(), observed, domain="dns")
    assert items == []
    assert [e.path for e in extras] == [zone, other]
