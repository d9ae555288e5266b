DROP TABLE customer_sessions;

--bun:split

DROP TABLE customer_sign_in_links;

--bun:split

DROP TABLE customer_accounts;
