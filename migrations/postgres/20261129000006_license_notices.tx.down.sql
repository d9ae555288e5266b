DROP INDEX licenses_owner_lower_idx;

--bun:split

DROP INDEX licenses_expired_notice_idx;

--bun:split

DROP INDEX licenses_expiry_warn_idx;

--bun:split

ALTER TABLE activations DROP COLUMN last_trust_level;

--bun:split

ALTER TABLE licenses DROP COLUMN expired_noticed_at;

--bun:split

ALTER TABLE licenses DROP COLUMN expiry_warned_at;
