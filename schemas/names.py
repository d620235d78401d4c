"""The one pattern of Hearth's object names: tenants, appliances, labels.

A name is 1-63 lower-case letters, digits or hyphens, not starting or ending
with a hyphen (a DNS label), so it is safe in a path, a queue key
(``tenant/appliance``), a lock name and a host name. Git, PostgreSQL, the
queue, the API and the config schemas all check names with this one pattern.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

OBJECT_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
OBJECT_NAME = re.compile(OBJECT_NAME_PATTERN)

ObjectName = Annotated[str, Field(pattern=OBJECT_NAME_PATTERN)]
"""A field holding an object name (the JSON Schema carries the pattern)."""
