-- Owner-facing licensing: expiry notices sent once per license, the trust level of each device's
-- last validate or heartbeat, and the look-ups of the customer portal.

ALTER TABLE licenses ADD COLUMN expiry_warned_at TIMESTAMP;

--bun:split

ALTER TABLE licenses ADD COLUMN expired_noticed_at TIMESTAMP;

--bun:split

ALTER TABLE activations ADD COLUMN last_trust_level integer NOT NULL DEFAULT 0;

--bun:split

-- The daily expiry run reads the licenses that still owe a notice, in (expires_at, id) order: each
-- index holds only those, so it shrinks as notices go out and never holds perpetual licenses.
CREATE INDEX licenses_expiry_warn_idx ON licenses (expires_at, id)
    WHERE expiry_warned_at IS NULL AND expires_at IS NOT NULL AND owner_email <> '' AND status = 'active';

--bun:split

CREATE INDEX licenses_expired_notice_idx ON licenses (expires_at, id)
    WHERE expired_noticed_at IS NULL AND expires_at IS NOT NULL AND owner_email <> '' AND status = 'active';

--bun:split

-- Owners are signed-in customers identified by their lower-case address; licenses keep the address
-- as given (domain lower-cased), so the portal looks them up by lower(owner_email).
CREATE INDEX licenses_owner_lower_idx ON licenses (lower(owner_email), created_at DESC, id DESC)
    WHERE owner_email <> '';
