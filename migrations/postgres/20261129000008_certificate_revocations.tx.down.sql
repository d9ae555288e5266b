DROP INDEX certificates_revoked_idx;
