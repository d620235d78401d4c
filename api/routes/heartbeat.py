"""``POST /api/v1/heartbeat``: an appliance reports what it observes.

``POST /api/v1/heartbeat/reenrol``: an appliance whose agent lost its state
directory (its sequence restarts at 1 and every heartbeat gets 409) asks, with
its own live token, for the last sequence stored, and resumes above it. The
stored sequence is never lowered, so a heartbeat captured before stays
refused; each re-enrolment is audited (``heartbeat.reenrol``) so a box that
keeps losing its state, or two boxes sharing one token, show up in the log.
"""

from __future__ import annotations

from litestar import Request, post
from litestar.params import JSONBody

from api.auth import DEFERRED_APPLIANCE_TOKEN
from api.deps import Caller, Conn
from api.errors import problem_responses
from api.heartbeats import receive_heartbeat
from engine.db import audit, heartbeats
from schemas.heartbeat import Heartbeat, HeartbeatAck, SequenceBaseline

HEARTBEAT_MAX_BODY = 64 * 1024


@post("/api/v1/heartbeat", opt={"permission": "heartbeat", DEFERRED_APPLIANCE_TOKEN: True},
      tags=["appliances"], status_code=200,
      request_max_body_size=HEARTBEAT_MAX_BODY,
      responses=problem_responses(400, 401, 409, 413, 429),
      summary="Report observed state; 200 means stored durably")
async def heartbeat(data: JSONBody[Heartbeat], request: Request) -> HeartbeatAck:
    # Context and caller are read off the request rather than injected: with two
    # dependencies Litestar resolves them in an anyio task group, which cost ~12 % of
    # a heartbeat's CPU for two attribute reads.
    # The token is looked up in the write itself (one round trip), so the principal
    # carries no appliance yet; the guard has admitted appliance tokens only.
    principal = request.user
    assert principal.kind == "appliance"  # the guard admits appliances only
    token = request.headers["authorization"].partition(" ")[2].strip()
    return await receive_heartbeat(request.app.state.ctx, token, data)


@post("/api/v1/heartbeat/reenrol", opt={"permission": "heartbeat"}, tags=["appliances"],
      status_code=200, responses=problem_responses(401, 429),
      summary="The last heartbeat sequence stored for the token's appliance (after lost state)")
async def reenrol(conn: Conn, principal: Caller) -> SequenceBaseline:
    # the guard resolved the token (401 when unknown or revoked): the appliance is its own
    appliance = principal.appliance
    assert appliance is not None  # the guard admits live appliance tokens only
    async with conn.transaction():
        last = await heartbeats.last_sequence(conn, appliance["appliance_id"])
        await audit.record(conn, actor_kind="appliance", actor_id=str(appliance["appliance_id"]),
                           tenant_id=appliance["tenant_id"], action="heartbeat.reenrol",
                           outcome="success", target=f"appliance:{appliance['appliance_id']}",
                           details={"last_sequence": last})
    return SequenceBaseline(last_sequence=last)


ROUTES = [heartbeat, reenrol]
