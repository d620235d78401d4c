-- The address Ansible connects to: recorded at registration (or set by an
-- operator later), never read from the tenant's repository. One appliance per
-- address across the whole fleet, so no tenant can register another tenant's box.
ALTER TABLE appliances ADD COLUMN address text;
CREATE UNIQUE INDEX appliances_address_unique ON appliances (address) WHERE address IS NOT NULL;
