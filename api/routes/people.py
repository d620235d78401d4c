"""People and memberships, for administrators."""

from __future__ import annotations

from typing import Any

from litestar import delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from api.deps import Caller, Conn, TenantRow
from api.errors import problem_responses
from api.models import MembershipOut, MembershipPut, PersonCreate, PersonOut, PersonUpdate
from engine.db import audit, people

_ERRORS = problem_responses(401, 403, 404)


async def _person_out(conn: Conn, row: dict[str, Any]) -> PersonOut:
    members = await people.memberships_of(conn, row["id"])
    return PersonOut(**row, memberships=[MembershipOut(tenant=m["tenant"], role=m["role"])
                                         for m in members])


@get("/api/v1/people", opt={"permission": "people.list"}, tags=["people"], responses=_ERRORS)
async def list_people(conn: Conn) -> list[PersonOut]:
    return [await _person_out(conn, row) for row in await people.list_people(conn)]


@post("/api/v1/people", opt={"permission": "people.create"}, tags=["people"],
      responses=problem_responses(401, 403, 409))
async def create_person(data: JSONBody[PersonCreate], conn: Conn, principal: Caller
                        ) -> PersonOut:
    row = await people.insert_person(conn, username=data.username, password=data.password,
                                     is_admin=data.is_admin)
    await audit.record(conn, actor_kind="person", actor_id=principal.id, action="user.create",
                       outcome="success", target=f"user:{row['id']}",
                       details={"is_admin": data.is_admin})
    return await _person_out(conn, row)


@get("/api/v1/people/{person_id:int}", opt={"permission": "people.get"}, tags=["people"],
     responses=_ERRORS)
async def get_person(person_id: FromPath[int], conn: Conn) -> PersonOut:
    return await _person_out(conn, await people.get_person(conn, person_id))


@patch("/api/v1/people/{person_id:int}", opt={"permission": "people.update"}, tags=["people"],
       responses=_ERRORS)
async def update_person(person_id: FromPath[int], data: JSONBody[PersonUpdate], conn: Conn,
                        principal: Caller) -> PersonOut:
    row = await people.update_person(conn, person_id, password=data.password,
                                     is_admin=data.is_admin, disabled=data.disabled)
    await audit.record(conn, actor_kind="person", actor_id=principal.id, action="user.update",
                       outcome="success", target=f"user:{person_id}",
                       details=data.model_dump(exclude={"password"}, exclude_none=True)
                       | {"password_changed": data.password is not None})
    return await _person_out(conn, row)


@put("/api/v1/tenants/{tenant:str}/members/{person_id:int}",
     opt={"permission": "memberships.put"}, tags=["people"], responses=_ERRORS)
async def put_membership(tenant: FromPath[str], person_id: FromPath[int],
                         data: JSONBody[MembershipPut],
                         conn: Conn, principal: Caller,
                         tenant_row: TenantRow) -> MembershipOut:
    await people.set_membership(conn, person_id=person_id, tenant_id=tenant_row["id"],
                                role=data.role)
    await audit.record(conn, actor_kind="person", actor_id=principal.id,
                       tenant_id=tenant_row["id"], action="membership.set", outcome="success",
                       target=f"user:{person_id}", details={"role": data.role})
    return MembershipOut(tenant=tenant, role=data.role)


@delete("/api/v1/tenants/{tenant:str}/members/{person_id:int}",
        opt={"permission": "memberships.delete"}, tags=["people"], responses=_ERRORS)
async def delete_membership(tenant: FromPath[str], person_id: FromPath[int], conn: Conn,
                            principal: Caller, tenant_row: TenantRow) -> None:
    await people.delete_membership(conn, person_id=person_id, tenant_id=tenant_row["id"])
    await audit.record(conn, actor_kind="person", actor_id=principal.id,
                       tenant_id=tenant_row["id"], action="membership.delete",
                       outcome="success", target=f"user:{person_id}")


ROUTES = [list_people, create_person, get_person, update_person, put_membership,
          delete_membership]
