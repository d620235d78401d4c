"""TXT records: the text the executor writes is the text the planner expects back.

A TXT record with bytes outside printable ASCII (``café``, an emoji) is
written into the zone file as ``\\DDD`` escapes and named reports it that way.
When the planner quoted desired text differently from the executor, such a
record was a ``dns remove``/``add`` pair on every plan: drift forever, a run
every pass that changed nothing.
"""

from __future__ import annotations

import copy

import pytest

from engine.execution.extravars import record_data
from engine.planning.normalize import desired_record, presentation
from engine.planning.plan import build_plan
from schemas.config import TXTRecord
from schemas.plan import EMPTY_INVENTORY
from tests.planning.helpers import NOW, REVISION, desired_of, load_fixture, observed_of

ZONE = "acme.example"

TEXTS = [
    pytest.param("café", '"caf\\195\\169"', id="latin-accent"),
    pytest.param("tea \u2615", '"tea \\226\\152\\149"', id="emoji"),
    pytest.param("Ω=1 ✓", '"\\206\\169=1 \\226\\156\\147"', id="symbols"),
    pytest.param('say "hé"', '"say \\"h\\195\\169\\""', id="quote-and-accent"),
]


@pytest.mark.parametrize(("text", "zone_file"), TEXTS)
def test_the_zone_file_form_is_written_out(text: str, zone_file: str) -> None:
    assert record_data(TXTRecord(type="TXT", name="t", text=text)) == zone_file


@pytest.mark.parametrize(("text", "zone_file"), TEXTS)
def test_what_named_reports_matches_desired(text: str, zone_file: str) -> None:
    record = TXTRecord(type="TXT", name="t", text=text)
    assert presentation(ZONE, "t.acme.example.", "TXT", zone_file) == desired_record(ZONE, record)


@pytest.mark.parametrize(("text", "zone_file"), TEXTS)
def test_a_converged_non_ascii_txt_record_plans_nothing(text: str, zone_file: str) -> None:
    desired_doc = load_fixture("desired_office.yaml")
    observed_doc = load_fixture("observed_office.yaml")
    zone = desired_doc["dns"]["zones"][0]
    assert zone["name"] == ZONE
    zone["records"].append({"name": "t", "type": "TXT", "text": text})
    observed = copy.deepcopy(observed_doc)
    observed["dns"]["zones"][0]["records"].append(
        {"name": "t.acme.example.", "type": "TXT", "ttl": 3600, "data": zone_file})
    baseline = build_plan(desired=desired_of(load_fixture("desired_office.yaml")),
                          observed=observed_of(observed_doc), inventory=EMPTY_INVENTORY,
                          policy=desired_of(desired_doc).policies, revision=REVISION, now=NOW)
    plan = build_plan(desired=desired_of(desired_doc), observed=observed_of(observed),
                      inventory=EMPTY_INVENTORY, policy=desired_of(desired_doc).policies,
                      revision=REVISION, now=NOW)
    assert [i.path for i in plan.items if i.domain == "dns"] == \
        [i.path for i in baseline.items if i.domain == "dns"] == []
