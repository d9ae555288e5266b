DROP TABLE admin_tokens;

--bun:split

DROP TABLE claims;

--bun:split

DROP TABLE certificates;

--bun:split

DROP TABLE activations;

--bun:split

DROP TABLE licenses;

--bun:split

DROP TABLE products;
