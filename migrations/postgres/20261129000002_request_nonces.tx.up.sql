-- Replay protection (PROTOCOL.md section 2 step 7) when no Redis is configured. A row whose
-- expires_at has passed counts as absent and is re-claimed in place; PurgeExpired deletes them
-- through the expires_at index, so neither path scans the table.
CREATE TABLE request_nonces (
    key_id      text NOT NULL,
    nonce       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (key_id, nonce)
);

--bun:split

CREATE INDEX request_nonces_expires_idx ON request_nonces (expires_at);
