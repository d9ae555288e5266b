-- The health events of intermediate CAs during a rollout (workflows/carollout): issuance errors and
-- refused certificates seen by the serve processes, chain checks made by the worker. The worker,
-- another process, reads the figures here. Events are facts appended once and never updated.
CREATE TABLE rollout_events (
    id bigserial PRIMARY KEY,
    intermediate_id text NOT NULL,
    kind            text NOT NULL,
    detail          text NOT NULL DEFAULT '',
    at              timestamptz NOT NULL
);

--bun:split

CREATE INDEX rollout_events_intermediate_idx ON rollout_events (intermediate_id, at);

--bun:split

-- The rollout counts an intermediate's certificates issued since the canary began and finds its
-- last expiry to retire it: both read this index only.
CREATE INDEX certificates_issuer_idx ON certificates (issuer_id, created_at, not_after);
