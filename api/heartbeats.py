"""Receiving a heartbeat: check the clock, store durably in a batch, answer with the revision.

The appliance is the token's, never the body's: the batched write looks the
token up in the same statement (``HeartbeatWriter.store_by_token``), so an
unknown or revoked token stores nothing and gets 401.
Refusals (stale sequence, clock skew) are counted by reason and audited.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime

from api import metrics
from api.context import ApiContext
from engine.db import audit
from engine.db.appliances import hash_token
from engine.db.heartbeats import HeartbeatRow
from engine.errors import AuthenticationError, ConflictError, InvalidInputError
from schemas.heartbeat import Heartbeat, HeartbeatAck

log = logging.getLogger("hearth.api.heartbeat")

_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""``\u0000`` in JSON text, not preceded by an escaped backslash: a NUL character, which
PostgreSQL's jsonb refuses. One such row would fail the whole batched write, so it is
refused here, before it joins a batch."""


async def _reject(ctx: ApiContext, appliance: dict, reason: str, details: dict) -> None:
    metrics.HEARTBEATS_REJECTED.labels(reason=reason).inc()
    await audit.record(ctx.pool, actor_kind="appliance", actor_id=str(appliance["appliance_id"]),
                       tenant_id=appliance["tenant_id"], action="heartbeat.reject",
                       outcome="failure", target=f"appliance:{appliance['appliance_id']}",
                       details={"reason": reason, **details})


async def _trigger(ctx: ApiContext, appliance: dict, beat: Heartbeat, observed_json: str) -> None:
    """Queue a reconcile when the box differs from desired state (a hint: the resync is the
    guarantee, so a failure here never fails the heartbeat)."""
    trigger = ctx.heartbeat_trigger
    if trigger is None:
        return
    try:
        await trigger.observe(appliance["tenant"], appliance["name"], beat.observed,
                              observed_json=observed_json)
    except Exception:  # Redis or git trouble must not reject a durable heartbeat
        log.warning("could not check heartbeat of %s/%s against desired state",
                    appliance["tenant"], appliance["name"], exc_info=True)


def _unknown_token() -> AuthenticationError:
    return AuthenticationError("unknown or revoked appliance token")


async def receive_heartbeat(ctx: ApiContext, token: str, beat: Heartbeat) -> HeartbeatAck:
    started = time.perf_counter()
    now = datetime.now(UTC)
    skew = abs((now - beat.sent_at).total_seconds())
    if skew > ctx.limits.max_clock_skew_seconds:
        # rare: look the token up on its own, to answer 401 first and audit the appliance
        appliance = await ctx.tokens.resolve(token)
        if appliance is None:
            raise _unknown_token()
        await _reject(ctx, appliance, "clock_skew", {"skew_seconds": round(skew)})
        raise InvalidInputError(
            f"sent_at is {round(skew)} s away from the server clock "
            f"(limit {ctx.limits.max_clock_skew_seconds} s); fix the appliance's time")
    observed_json = beat.observed.model_dump_json()
    services_json = json.dumps([s.model_dump() for s in beat.services])
    facts_json = json.dumps(beat.facts)
    # the substring test is a fast scan; the regex runs only on a rare hit
    if any("\\u0000" in text and _NUL_ESCAPE.search(text)
           for text in (observed_json, services_json, facts_json)) \
            or "\x00" in beat.agent_version:
        raise InvalidInputError("the heartbeat contains a NUL character; nothing was stored")
    row = HeartbeatRow(
        appliance_id=None,  # type: ignore[arg-type]  # the token's, found by the write
        sequence=beat.sequence, sent_at=beat.sent_at,
        received_at=now, agent_version=beat.agent_version,
        applied_revision=beat.applied_revision, observed=observed_json,
        services=services_json, facts=facts_json, token_hash=hash_token(ctx.settings.secret_key, token),
        applied_run=beat.applied_run)
    written = await ctx.writer.store_by_token(row)
    if written is None:
        raise _unknown_token()
    appliance = written.appliance
    if not written.accepted:
        await _reject(ctx, appliance, "stale_sequence", {"sequence": beat.sequence})
        raise ConflictError(f"sequence {beat.sequence} is not above the last one stored")
    metrics.HEARTBEATS_ACCEPTED.inc()
    await _trigger(ctx, appliance, beat, observed_json)
    metrics.HEARTBEAT_WRITE_SECONDS.observe(time.perf_counter() - started)
    return HeartbeatAck(
        accepted_sequence=beat.sequence,
        desired_revision=await ctx.revision(appliance["tenant"]),
        next_interval_seconds=ctx.settings.agent_interval_seconds)
