//! A server-rendered chat with two interchangeable authentication
//! strategies. `start` builds and runs the whole app from a `Config`; the
//! binary and the integration tests both go through it.
//!
//! Dependencies point one way: `web` uses `auth` and `chat`, and both of
//! those use `store`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod metrics;
pub mod store;
pub mod telemetry;
mod util;
pub mod web;

pub use app::{start, RunningApp};
pub use config::Config;
