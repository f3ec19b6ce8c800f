//! # openhearing-signaling
//!
//! The OpenHearing signaling protocol — typed, versioned JSON messages exchanged over
//! one WebSocket per participant — and a Rust client for it.
//!
//! * [`protocol`]: every message both sides send, the error codes and the decoder the
//!   server uses to tell malformed frames from unknown ones. The normative description
//!   with examples is `PROTOCOL.md` beside this crate.
//! * [`client`]: a tokio-tungstenite client used by the integration tests, the CLI and
//!   the load generator.
//!
//! Panic policy: nothing in this crate panics on input from the network; every decode
//! failure is a [`protocol::DecodeError`].

#![forbid(unsafe_code)]

pub mod client;
pub mod protocol;

pub use client::{ClientError, SignalingClient, SignalingSender};
pub use protocol::*;
