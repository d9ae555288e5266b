-- The commerce context: catalog products and their versions, orders and their lines, coupons,
-- entitlements, payment (webhook) events and the download links handed out. Same conventions as
-- the licensing tables: times are timestamptz (UTC), enums are text, lists are JSON text, amounts
-- are bigint minor units. Names and slugs use the "C" collation so that lists sort byte-wise, the
-- same on every server locale and on SQLite, and keyset pages follow the index.

CREATE TABLE catalog_products (
    id           text PRIMARY KEY,
    slug         text COLLATE "C" NOT NULL,
    name         text COLLATE "C" NOT NULL,
    description  text NOT NULL DEFAULT '',
    type         text NOT NULL,
    currency     text NOT NULL,
    -- [{"currency":"EUR","amount_cents":4900}, …]; the primary currency is among them.
    prices       text NOT NULL DEFAULT '[]',
    -- The slugs a bundle grants.
    components   text NOT NULL DEFAULT '[]',
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

--bun:split

CREATE UNIQUE INDEX catalog_products_slug_key ON catalog_products (slug);

--bun:split

-- Admin and public lists: by name, then slug, keyset-paginated on both.
CREATE INDEX catalog_products_name_idx ON catalog_products (name, slug);

--bun:split

CREATE TABLE catalog_versions (
    id                    text PRIMARY KEY,
    -- Deleting a product deletes its versions (ports.CatalogRepo.DeleteProduct).
    product_id            text NOT NULL REFERENCES catalog_products (id) ON DELETE CASCADE,
    version               text NOT NULL,
    platform              text NOT NULL,
    release_notes         text NOT NULL DEFAULT '',
    min_protocol_version  integer NOT NULL DEFAULT 1,
    storage_key           text NOT NULL DEFAULT '',
    file_name             text NOT NULL DEFAULT '',
    size_bytes            bigint NOT NULL DEFAULT 0,
    sha256                text NOT NULL DEFAULT '',
    published             boolean NOT NULL DEFAULT false,
    is_latest             boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);

--bun:split

-- One row per (product, platform, version); also the index of Versions(product).
CREATE UNIQUE INDEX catalog_versions_product_platform_version_key ON catalog_versions (product_id, platform, version);

--bun:split

CREATE TABLE orders (
    id                   text PRIMARY KEY,
    -- Sequential order number (reference LS-000123). An identity: concurrent inserts never share
    -- one; a rolled-back insert leaves a gap, which is fine for a reference.
    number               bigint GENERATED ALWAYS AS IDENTITY,
    customer_email       text NOT NULL,
    customer_id          text NOT NULL DEFAULT '',
    source               text NOT NULL,
    currency             text NOT NULL,
    subtotal_cents       bigint NOT NULL DEFAULT 0,
    discount_cents       bigint NOT NULL DEFAULT 0,
    total_cents          bigint NOT NULL DEFAULT 0,
    coupon_id            text NOT NULL DEFAULT '',
    coupon_code          text NOT NULL DEFAULT '',
    status               text NOT NULL,
    -- Non-empty while the order is held for review.
    review_reason        text NOT NULL DEFAULT '',
    payment_provider     text NOT NULL DEFAULT '',
    payment_ref          text NOT NULL DEFAULT '',
    checkout_session_id  text NOT NULL DEFAULT '',
    paid_amount_cents    bigint NOT NULL DEFAULT 0,
    paid_currency        text NOT NULL DEFAULT '',
    paid_at              timestamptz,
    fulfilled_at         timestamptz,
    refunded_at          timestamptz,
    status_reason        text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);

--bun:split

CREATE UNIQUE INDEX orders_number_key ON orders (number);

--bun:split

-- Admin lists: newest first, keyset-paginated on (created_at, id), optionally by status, customer
-- or held for review.
CREATE INDEX orders_created_idx ON orders (created_at DESC, id DESC);

--bun:split

CREATE INDEX orders_status_created_idx ON orders (status, created_at DESC, id DESC);

--bun:split

CREATE INDEX orders_customer_created_idx ON orders (customer_email, created_at DESC, id DESC);

--bun:split

CREATE INDEX orders_review_created_idx ON orders (created_at DESC, id DESC) WHERE review_reason <> '';

--bun:split

-- Webhook lookups. Not unique: a coupon's payment reference (coupon:CODE) is shared by its orders.
CREATE INDEX orders_checkout_session_idx ON orders (checkout_session_id) WHERE checkout_session_id <> '';

--bun:split

CREATE INDEX orders_payment_ref_idx ON orders (payment_provider, payment_ref) WHERE payment_ref <> '';

--bun:split

-- Unfinished: paid, not held, not fulfilled (restarted after a crash), oldest first.
CREATE INDEX orders_unfinished_idx ON orders (created_at, id)
    WHERE status = 'paid' AND review_reason = '' AND fulfilled_at IS NULL;

--bun:split

CREATE TABLE order_lines (
    order_id          text NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_index        integer NOT NULL,
    product           text NOT NULL,
    product_name      text NOT NULL DEFAULT '',
    product_type      text NOT NULL DEFAULT '',
    quantity          integer NOT NULL,
    unit_price_cents  bigint NOT NULL,
    PRIMARY KEY (order_id, line_index)
);

--bun:split

-- CountByProduct: the deletion guard of catalog products.
CREATE INDEX order_lines_product_idx ON order_lines (product, order_id);

--bun:split

CREATE TABLE coupons (
    id                text PRIMARY KEY,
    code              text NOT NULL,
    kind              text NOT NULL,
    percent_off       integer NOT NULL DEFAULT 0,
    amount_off_cents  bigint NOT NULL DEFAULT 0,
    currency          text NOT NULL DEFAULT '',
    starts_at         timestamptz,
    ends_at           timestamptz,
    -- NULL = unlimited. Redeem increments redemptions only while it is below.
    max_redemptions   integer,
    redemptions       integer NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
    active            boolean NOT NULL DEFAULT true,
    notes             text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

--bun:split

CREATE UNIQUE INDEX coupons_code_key ON coupons (code);

--bun:split

CREATE INDEX coupons_created_idx ON coupons (created_at DESC, id DESC);

--bun:split

CREATE TABLE entitlements (
    id              text PRIMARY KEY,
    order_id        text NOT NULL REFERENCES orders (id),
    line_index      integer NOT NULL,
    product         text NOT NULL,
    via_bundle      text NOT NULL DEFAULT '',
    customer_email  text NOT NULL,
    -- The license issued for a plugin; '' for sample packs.
    license_id      text NOT NULL DEFAULT '',
    status          text NOT NULL,
    unlocked_at     timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL
);

--bun:split

-- One entitlement per (order, line, product): a retried fulfilment cannot grant twice. Also the
-- index of ByOrder.
CREATE UNIQUE INDEX entitlements_order_line_product_key ON entitlements (order_id, line_index, product);

--bun:split

CREATE INDEX entitlements_customer_product_idx ON entitlements (customer_email, product);

--bun:split

CREATE INDEX entitlements_license_idx ON entitlements (license_id) WHERE license_id <> '';

--bun:split

CREATE TABLE payment_events (
    provider     text NOT NULL,
    event_id     text NOT NULL,
    type         text NOT NULL,
    -- No foreign key: an event may name an order that does not exist.
    order_id     text NOT NULL DEFAULT '',
    outcome      text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL,
    -- Exactly once per provider event: Record is INSERT … ON CONFLICT DO NOTHING on this key.
    PRIMARY KEY (provider, event_id)
);

--bun:split

CREATE TABLE downloads (
    id              text PRIMARY KEY,
    order_id        text NOT NULL REFERENCES orders (id),
    entitlement_id  text NOT NULL DEFAULT '',
    version_id      text NOT NULL DEFAULT '',
    customer_email  text NOT NULL DEFAULT '',
    request_addr    text NOT NULL DEFAULT '',
    issued_at       timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);

--bun:split

CREATE INDEX downloads_order_idx ON downloads (order_id, issued_at, id);
