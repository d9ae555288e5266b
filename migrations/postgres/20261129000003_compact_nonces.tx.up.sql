-- Compact replay store: a row is the 32-byte SHA-256 of the length-prefixed (key id, nonce) pair
-- and its expiry in unix milliseconds
-- instead of two text columns behind a separate primary-key index. Nonces are transient:
-- the reservations of the old table are dropped, which is safe because migrations run before the
-- server serves.
DROP TABLE request_nonces;

--bun:split

CREATE TABLE request_nonces (
    pair        bytea NOT NULL PRIMARY KEY,
    expires_at  bigint NOT NULL
);

--bun:split

CREATE INDEX request_nonces_expires_idx ON request_nonces (expires_at);
