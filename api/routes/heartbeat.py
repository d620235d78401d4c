"""``POST /api/v1/heartbeat``: an appliance reports what it observes."""

from __future__ import annotations

from litestar import Request, post
from litestar.params import JSONBody

from api.auth import DEFERRED_APPLIANCE_TOKEN
from api.errors import problem_responses
from api.heartbeats import receive_heartbeat
from schemas.heartbeat import Heartbeat, HeartbeatAck

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


ROUTES = [heartbeat]
