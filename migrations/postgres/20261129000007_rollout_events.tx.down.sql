DROP INDEX IF EXISTS certificates_issuer_idx;

--bun:split

DROP TABLE IF EXISTS rollout_events;
