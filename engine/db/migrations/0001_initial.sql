-- Hearth's first schema. Git holds desired state; these tables hold
-- observations, runs, pull requests, requests, people and audit events.
-- Anything about desired state here is a cache keyed by commit id.

CREATE TABLE tenants (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    display_name        text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_good_revision  text,
    validated_revision  text,
    validation_status   text NOT NULL DEFAULT 'unknown'
                        CHECK (validation_status IN ('unknown', 'valid', 'invalid')),
    validation_errors   jsonb NOT NULL DEFAULT '[]'::jsonb,
    validated_at        timestamptz
);

CREATE TABLE people (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    is_admin       boolean NOT NULL DEFAULT false,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    person_id   bigint NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('operator', 'customer', 'auditor')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, tenant_id)
);
CREATE INDEX memberships_tenant ON memberships (tenant_id);

CREATE TABLE appliances (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    hostname    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- Appliance tokens are opaque random strings; only HMAC-SHA256(SECRET_KEY, token) is kept.
CREATE TABLE appliance_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appliance_id  uuid NOT NULL REFERENCES appliances (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    hint          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX appliance_tokens_live ON appliance_tokens (appliance_id) WHERE revoked_at IS NULL;

CREATE TABLE observed_latest (
    appliance_id      uuid PRIMARY KEY REFERENCES appliances (id) ON DELETE CASCADE,
    sequence          bigint NOT NULL,
    sent_at           timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    agent_version     text NOT NULL,
    applied_revision  text,
    observed          jsonb NOT NULL,
    services          jsonb NOT NULL,
    facts             jsonb NOT NULL
);

-- Bounded: the heartbeat writer keeps the last N rows per appliance.
CREATE TABLE observed_history (
    appliance_id      uuid NOT NULL REFERENCES appliances (id) ON DELETE CASCADE,
    sequence          bigint NOT NULL,
    sent_at           timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    applied_revision  text,
    observed          jsonb NOT NULL,
    services          jsonb NOT NULL,
    facts             jsonb NOT NULL,
    PRIMARY KEY (appliance_id, sequence)
);

CREATE TABLE appliance_status (
    appliance_id        uuid PRIMARY KEY REFERENCES appliances (id) ON DELETE CASCADE,
    sync                text NOT NULL DEFAULT 'Unknown'
                        CHECK (sync IN ('Synced', 'OutOfSync', 'Unknown')),
    health              text NOT NULL DEFAULT 'Missing'
                        CHECK (health IN ('Healthy', 'Progressing', 'Degraded', 'Missing')),
    conditions          jsonb NOT NULL DEFAULT '[]'::jsonb,
    desired_revision    text,
    applied_revision    text,
    observed_sequence   bigint,
    inventory           jsonb NOT NULL DEFAULT '{}'::jsonb,
    plan_hash           text,
    consecutive_failures integer NOT NULL DEFAULT 0,
    total_failures      integer NOT NULL DEFAULT 0,
    last_run_id         bigint,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reconcile_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    appliances   uuid[] NOT NULL,
    revision     text NOT NULL,
    plan         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    results      jsonb NOT NULL DEFAULT '{}'::jsonb,
    changed      integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    check_mode   boolean NOT NULL DEFAULT false,
    trigger      text NOT NULL DEFAULT '',
    worker_id    text,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX reconcile_runs_tenant ON reconcile_runs (tenant_id, id DESC);
CREATE INDEX reconcile_runs_active ON reconcile_runs (status) WHERE status IN ('queued', 'running');

CREATE TABLE run_events (
    run_id  bigint NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    host    text,
    event   text NOT NULL,
    data    jsonb NOT NULL DEFAULT '{}'::jsonb,
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE support_requests (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    requested_by  bigint REFERENCES people (id) ON DELETE SET NULL,
    text          text NOT NULL,
    status        text NOT NULL DEFAULT 'received',
    intents       jsonb,
    answer        text,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_requests_tenant ON support_requests (tenant_id, id DESC);

CREATE TABLE pull_requests (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number              integer NOT NULL,
    title               text NOT NULL,
    description         text NOT NULL DEFAULT '',
    branch              text NOT NULL,
    base_revision       text NOT NULL,
    head_revision       text NOT NULL,
    status              text NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'merged', 'closed')),
    checks              jsonb NOT NULL DEFAULT '{}'::jsonb,
    author_kind         text NOT NULL,
    author_id           text NOT NULL,
    support_request_id  bigint REFERENCES support_requests (id) ON DELETE SET NULL,
    approved_by         bigint REFERENCES people (id) ON DELETE SET NULL,
    merged_revision     text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    merged_at           timestamptz,
    UNIQUE (tenant_id, number)
);

CREATE TABLE tasks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    appliance_id  uuid REFERENCES appliances (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    params        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    result        jsonb,
    requested_by  bigint REFERENCES people (id) ON DELETE SET NULL,
    run_id        bigint REFERENCES reconcile_runs (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX tasks_tenant ON tasks (tenant_id, id DESC);

CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_kind  text NOT NULL CHECK (actor_kind IN ('person', 'appliance', 'system', 'anonymous')),
    actor_id    text,
    tenant_id   bigint REFERENCES tenants (id) ON DELETE SET NULL,
    action      text NOT NULL,
    target      text,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id DESC);
CREATE INDEX audit_events_at ON audit_events (at);
