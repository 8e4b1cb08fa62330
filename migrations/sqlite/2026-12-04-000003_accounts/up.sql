-- One row per login (a session, or a token family), so a user can see
-- where they are logged in and end any of them.
CREATE TABLE logins (
    -- The session handle or the token family id.
    handle TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    user_agent TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    ended_at BIGINT
);

CREATE INDEX logins_by_user ON logins (user_id, last_seen);

-- Security events a user can review: never a password, token, cookie or
-- message body.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT REFERENCES users (id),
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX audit_events_by_user ON audit_events (user_id, id);
