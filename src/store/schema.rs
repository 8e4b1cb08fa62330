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
