-- Times are Unix milliseconds (BIGINT) so the same columns work on PostgreSQL.
-- AUTOINCREMENT keeps ids from ever being reused: clients resume from a
-- message id, so a reused id would hide messages.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    -- NFKC, case-folded: "Alice" and "ａｌｉｃｅ" collide.
    username_key TEXT NOT NULL UNIQUE,
    -- Confusable skeleton: "аlice" with a Cyrillic a collides with "alice".
    username_skeleton TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    -- Sessions and tokens issued before this time are no longer valid.
    valid_after BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE rooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id BIGINT NOT NULL REFERENCES rooms (id),
    author_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    client_id TEXT,
    created_at BIGINT NOT NULL,
    -- A client resending after a lost acknowledgement must not store twice.
    UNIQUE (author_id, client_id)
);

CREATE INDEX messages_by_room ON messages (room_id, id);

-- The embedded session store: used when no Redis is configured. The key is
-- the SHA-256 of the session id, so a copy of the database logs nobody in.
CREATE TABLE sessions (
    key_hash TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX sessions_by_expiry ON sessions (expires_at);
