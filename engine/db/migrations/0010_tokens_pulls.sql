-- Personal access tokens (git over HTTP), pull request reviews and the fields
-- pull requests need beyond 0001 (target branch, labels, revert link, closing).

-- A person's tokens: only HMAC-SHA256(SECRET_KEY, token) is kept, like appliance tokens.
CREATE TABLE personal_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id     bigint NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    scope         text NOT NULL CHECK (scope IN ('read', 'write')),
    token_hash    bytea NOT NULL UNIQUE,
    hint          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX personal_tokens_person ON personal_tokens (person_id, id DESC);

ALTER TABLE pull_requests
    ADD COLUMN target       text NOT NULL DEFAULT 'main',
    ADD COLUMN labels       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN reverts      integer,
    ADD COLUMN closed_at    timestamptz,
    ADD COLUMN merged_by    bigint REFERENCES people (id) ON DELETE SET NULL;
CREATE INDEX pull_requests_branch ON pull_requests (tenant_id, branch) WHERE status = 'open';

CREATE TABLE pull_reviews (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pull_id        bigint NOT NULL REFERENCES pull_requests (id) ON DELETE CASCADE,
    person_id      bigint REFERENCES people (id) ON DELETE SET NULL,
    username       text NOT NULL,
    role           text NOT NULL,
    state          text NOT NULL CHECK (state IN ('approve', 'request_changes', 'comment')),
    body           text NOT NULL DEFAULT '',
    head_revision  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pull_reviews_pull ON pull_reviews (pull_id, id);
