-- The customers context: accounts (one per verified e-mail), single-use sign-in links and
-- sessions. The same schema as PostgreSQL's: times are TIMESTAMP text in UTC as bun writes it,
-- hashes BLOB, enums text. Tokens are never stored, only their SHA-256.
--
-- Guest orders and licenses are not linked by a foreign key: they belong to an account because
-- they carry its verified e-mail (orders.customer_email, licenses.owner_email).

CREATE TABLE customer_accounts (
    id                 text PRIMARY KEY,
    -- Lower case (the service normalises it); compared byte-wise (BINARY).
    email              text NOT NULL,
    -- argon2id PHC string; '' = no password set.
    password_hash      text NOT NULL DEFAULT '',
    email_verified_at  TIMESTAMP NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);

--bun:split

-- One account per address; also the index of AccountRepo.ByEmail.
CREATE UNIQUE INDEX customer_accounts_email_key ON customer_accounts (email);

--bun:split

CREATE TABLE customer_sign_in_links (
    token_hash  BLOB PRIMARY KEY,
    email       text NOT NULL,
    purpose     text NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP
);

--bun:split

-- For deleting links that expired long ago.
CREATE INDEX customer_sign_in_links_expires_idx ON customer_sign_in_links (expires_at);

--bun:split

CREATE TABLE customer_sessions (
    id            text PRIMARY KEY,
    token_hash    BLOB NOT NULL,
    account_id    text NOT NULL REFERENCES customer_accounts (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    last_seen_at  TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP,
    user_agent    text NOT NULL DEFAULT '',
    addr          text NOT NULL DEFAULT ''
);

--bun:split

-- Every authenticated request looks its session up by the token's hash.
CREATE UNIQUE INDEX customer_sessions_token_hash_key ON customer_sessions (token_hash);

--bun:split

-- Sign-out everywhere finds the account's live sessions; also the foreign key's index.
CREATE INDEX customer_sessions_account_idx ON customer_sessions (account_id, revoked_at);
