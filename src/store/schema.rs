//! Diesel table definitions, kept by hand in step with the migrations.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        username_key -> Text,
        username_skeleton -> Text,
        email -> Text,
        email_key -> Text,
        password_hash -> Text,
        valid_after -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    rooms (id) {
        id -> BigInt,
        name -> Text,
        name_key -> Text,
        created_by -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        room_id -> BigInt,
        author_id -> BigInt,
        body -> Text,
        client_id -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (key_hash) {
        key_hash -> Text,
        state -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(messages -> users (author_id));
diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(rooms -> users (created_by));
diesel::allow_tables_to_appear_in_same_query!(users, rooms, messages, sessions);

diesel::table! {
    refresh_families (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        family_id -> Text,
        user_id -> BigInt,
        token_hash -> Text,
        expires_at -> BigInt,
        spent_at -> Nullable<BigInt>,
        replaced_by -> Nullable<Text>,
        revoked -> Bool,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(refresh_tokens -> refresh_families (family_id));
diesel::allow_tables_to_appear_in_same_query!(refresh_families, refresh_tokens, users);
diesel::allow_tables_to_appear_in_same_query!(logins, audit_events, users);

diesel::table! {
    logins (handle) {
        handle -> Text,
        user_id -> BigInt,
        user_agent -> Text,
        address -> Text,
        created_at -> BigInt,
        last_seen -> BigInt,
        ended_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        kind -> Text,
        address -> Text,
        created_at -> BigInt,
    }
}
