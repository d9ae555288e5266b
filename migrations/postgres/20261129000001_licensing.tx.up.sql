-- The licensing context: products (its view of them), licenses, activations, device certificates,
-- first-activation claims and admin API tokens. Times are timestamptz (UTC), enums are text,
-- string lists are JSON text (the same on SQLite), durations are milliseconds.

CREATE TABLE products (
    slug                     text PRIMARY KEY,
    name                     text NOT NULL,
    type                     text NOT NULL,
    price_cents              bigint NOT NULL DEFAULT 0,
    currency                 text NOT NULL DEFAULT '',
    entitlements             text NOT NULL DEFAULT '[]',
    max_activations          integer NOT NULL,
    first_activation         text NOT NULL,
    heartbeat_interval_ms    bigint NOT NULL,
    grace_period_ms          bigint NOT NULL,
    certificate_validity_ms  bigint NOT NULL,
    transfers_per_30d        integer NOT NULL,
    duration_ms              bigint NOT NULL,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);

--bun:split

CREATE TABLE licenses (
    id               text PRIMARY KEY,
    key_hash         bytea NOT NULL,
    key_sealed       bytea,
    key_prefix       text NOT NULL,
    product          text NOT NULL,
    entitlements     text NOT NULL DEFAULT '[]',
    owner_email      text NOT NULL DEFAULT '',
    max_activations  integer NOT NULL,
    status           text NOT NULL,
    status_reason    text NOT NULL DEFAULT '',
    expires_at       timestamptz,
    -- Set by CreateLicense callers that retry (fulfilment): a retry finds the first license.
    idempotency_key  text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

--bun:split

CREATE UNIQUE INDEX licenses_key_hash_key ON licenses (key_hash);

--bun:split

CREATE UNIQUE INDEX licenses_idempotency_key_key ON licenses (idempotency_key);

--bun:split

-- Admin lists: newest first, keyset-paginated on (created_at, id), optionally by product or owner.
CREATE INDEX licenses_created_idx ON licenses (created_at DESC, id DESC);

--bun:split

CREATE INDEX licenses_product_created_idx ON licenses (product, created_at DESC, id DESC);

--bun:split

CREATE INDEX licenses_owner_created_idx ON licenses (owner_email, created_at DESC, id DESC);

--bun:split

CREATE TABLE activations (
    id                  text PRIMARY KEY,
    license_id          text NOT NULL REFERENCES licenses (id),
    fingerprint         text NOT NULL,
    device_name         text NOT NULL DEFAULT '',
    platform            text NOT NULL DEFAULT '',
    plugin_version      text NOT NULL DEFAULT '',
    key_thumbprint      text NOT NULL,
    public_key_der      bytea,
    status              text NOT NULL,
    status_reason       text NOT NULL DEFAULT '',
    certificate_serial  text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL,
    last_heartbeat_at   timestamptz NOT NULL,
    last_lease_exp      timestamptz,
    ended_at            timestamptz,
    freed_by_transfer   boolean NOT NULL DEFAULT false,
    seat_held_until     timestamptz,
    updated_at          timestamptz NOT NULL
);

--bun:split

-- The last line of defence behind the license row lock: one active activation per device and license.
CREATE UNIQUE INDEX activations_active_device_key ON activations (license_id, fingerprint) WHERE status = 'active';

--bun:split

CREATE INDEX activations_active_thumbprint_idx ON activations (key_thumbprint) WHERE status = 'active';

--bun:split

-- Seat holders: the active ones by status, the ended ones still holding a seat by seat_held_until,
-- so that the ended activations of a busy license never need scanning.
CREATE INDEX activations_seats_idx ON activations (license_id, status, seat_held_until);

--bun:split

CREATE INDEX activations_held_idx ON activations (license_id, seat_held_until) WHERE seat_held_until IS NOT NULL;

--bun:split

CREATE INDEX activations_transfers_idx ON activations (license_id, ended_at) WHERE freed_by_transfer;

--bun:split

CREATE INDEX activations_created_idx ON activations (created_at DESC, id DESC);

--bun:split

CREATE INDEX activations_license_created_idx ON activations (license_id, created_at DESC, id DESC);

--bun:split

CREATE INDEX activations_fingerprint_idx ON activations (fingerprint, created_at DESC, id DESC);

--bun:split

CREATE TABLE certificates (
    serial          text PRIMARY KEY,
    activation_id   text NOT NULL REFERENCES activations (id),
    license_id      text NOT NULL REFERENCES licenses (id),
    key_thumbprint  text NOT NULL,
    issuer_id       text NOT NULL,
    der             bytea,
    not_before      timestamptz NOT NULL,
    not_after       timestamptz NOT NULL,
    status          text NOT NULL,
    overlap_until   timestamptz,
    revoked_at      timestamptz,
    revoke_reason   text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL
);

--bun:split

CREATE INDEX certificates_activation_idx ON certificates (activation_id, created_at);

--bun:split

CREATE INDEX certificates_license_idx ON certificates (license_id);

--bun:split

CREATE TABLE claims (
    id              text PRIMARY KEY,
    license_id      text NOT NULL REFERENCES licenses (id),
    fingerprint     text NOT NULL,
    device_name     text NOT NULL DEFAULT '',
    platform        text NOT NULL DEFAULT '',
    plugin_version  text NOT NULL DEFAULT '',
    product         text NOT NULL DEFAULT '',
    csr_pem         text NOT NULL DEFAULT '',
    key_thumbprint  text NOT NULL,
    public_key_der  bytea,
    request_addr    text NOT NULL DEFAULT '',
    status          text NOT NULL,
    token_hash      bytea,
    token_used      boolean NOT NULL DEFAULT false,
    attempt_count   integer NOT NULL DEFAULT 0,
    activation_id   text NOT NULL DEFAULT '',
    decided_by      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    decided_at      timestamptz
);

--bun:split

CREATE INDEX claims_license_idx ON claims (license_id, status, expires_at);

--bun:split

CREATE INDEX claims_thumbprint_idx ON claims (key_thumbprint, status, expires_at);

--bun:split

CREATE UNIQUE INDEX claims_token_hash_key ON claims (token_hash);

--bun:split

CREATE TABLE admin_tokens (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    hash        bytea NOT NULL,
    created_at  timestamptz NOT NULL
);

--bun:split

CREATE UNIQUE INDEX admin_tokens_hash_key ON admin_tokens (hash);
