//! Live chat: the hub of rooms and sockets, the event channel that feeds it,
//! one connection's loop, and the frames they speak.

pub mod events;
pub mod frame_guard;
pub mod hub;
pub mod pending;
pub mod post;
pub mod protocol;
pub mod rate;
pub mod socket;

pub use events::{Event, Events};
pub use hub::Hub;
pub use protocol::CloseKind;
