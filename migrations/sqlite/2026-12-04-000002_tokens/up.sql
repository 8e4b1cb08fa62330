-- Token mode. A family is one login on one device: every refresh token it
-- ever had, linked by rotation. Revoking the family ends the login.
CREATE TABLE refresh_families (
    id TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    -- The family is never renewed past this (REFRESH_FAMILY_MAX_SECS).
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX refresh_families_by_user ON refresh_families (user_id);

-- Refresh tokens, stored as SHA-256 hashes: a copy of the table refreshes
-- nothing.
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    family_id TEXT NOT NULL REFERENCES refresh_families (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    spent_at BIGINT,
    replaced_by TEXT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

-- The embedded deny-list: access-token ids revoked before their expiry.
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
