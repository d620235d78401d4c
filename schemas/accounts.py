"""Who needs a Samba account on an appliance: a rule over desired state alone.

The planner (which Samba passwords are pending) and the executor's extravars
(which accounts the samba role keeps) both need the answer; it lives here, with
the values it reads, so the rule is written once and ``engine.execution`` never
imports ``engine.planning`` (``docs/architecture.md``, "Packages").
"""

from __future__ import annotations

from schemas.config import DesiredAppliance


def samba_account_names(desired: DesiredAppliance) -> list[str]:
    """Users who need a Samba account: named by a share, in a share's group, or all of
    the appliance's users when some share is open to every account."""
    if desired.samba is None:
        return []
    present = [u for u in desired.users.users if u.state == "present"]
    names: set[str] = set()
    for share in desired.samba.shares:
        if not share.valid_users and not share.valid_groups and not share.guest_ok:
            names |= {u.name for u in present}
        names |= set(share.valid_users)
        names |= {u.name for u in present if set(u.groups) & set(share.valid_groups)}
    return sorted(names & {u.name for u in present})
