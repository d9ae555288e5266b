DROP TABLE request_nonces;
