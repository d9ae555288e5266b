DROP TABLE downloads;

--bun:split

DROP TABLE payment_events;

--bun:split

DROP TABLE entitlements;

--bun:split

DROP TABLE coupons;

--bun:split

DROP TABLE order_lines;

--bun:split

DROP TABLE orders;

--bun:split

DROP TABLE catalog_versions;

--bun:split

DROP TABLE catalog_products;
