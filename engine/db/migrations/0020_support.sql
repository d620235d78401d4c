-- The support assistant (issue 12): what support_requests (0001) needs to keep a
-- request through queueing, model retries, the reply and the pull request it opened.

ALTER TABLE support_requests
    ADD COLUMN role             text NOT NULL DEFAULT 'customer',
    ADD COLUMN appliance        text,
    ADD COLUMN conversation_id  bigint REFERENCES support_requests (id) ON DELETE SET NULL,
    ADD COLUMN reply_kind       text CHECK (reply_kind IN ('answer', 'change', 'question', 'refusal')),
    ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN model            text,
    ADD COLUMN raw_reply        text,
    ADD COLUMN pull_number      integer;

ALTER TABLE support_requests ADD CONSTRAINT support_requests_status CHECK (status IN (
    'received', 'queued', 'waiting_for_model', 'answered', 'question', 'refused',
    'pull_request_opened', 'failed'));

-- The resync finds requests whose queue entry was lost (a Redis restart) by this index.
CREATE INDEX support_requests_pending ON support_requests (next_attempt_at)
    WHERE status IN ('received', 'queued', 'waiting_for_model');
CREATE INDEX support_requests_conversation ON support_requests (conversation_id, id)
    WHERE conversation_id IS NOT NULL;
