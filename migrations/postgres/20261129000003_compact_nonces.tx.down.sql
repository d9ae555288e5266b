-- Back to the table of 20261129000002_request_nonces; the transient reservations are dropped.
DROP TABLE request_nonces;

--bun:split

CREATE TABLE request_nonces (
    key_id      text NOT NULL,
    nonce       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (key_id, nonce)
);

--bun:split

CREATE INDEX request_nonces_expires_idx ON request_nonces (expires_at);
