-- Revocation lists (GET /v1/pki/crl/{intermediate}.crl) read the revoked, unexpired certificates of
-- one intermediate on every request: the index holds revoked rows only, so it stays small however
-- many certificates are issued.
CREATE INDEX certificates_revoked_idx ON certificates (issuer_id, not_after)
    WHERE status = 'revoked';
