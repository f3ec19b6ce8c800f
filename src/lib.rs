//! # OpenHearing
//!
//! An open-source server for online court hearings: a WebSocket signaling server, an
//! SFU media relay and a recorder that keeps a signed, crash-safe archive of each
//! hearing (the `openhearing-recorder` crate, fed through [`sfu::MediaTap`]).
//!
//! Layers, from the wire inwards (README.md has the picture):
//! * [`api`]: HTTP — the admin REST API, the signaling WebSocket, health probes and the
//!   web client. Translates JSON to domain calls; holds no hearing state.
//! * [`hearing`]: one actor task per live hearing owns its state and decides, in one
//!   policy function, who receives whose media.
//! * [`sfu`]: WebRTC connections and the per-packet forwarding hot path. Knows peers
//!   and tracks, never hearings, HTTP, JSON or the database.
//! * [`store`]: persistence behind a trait (SQLite now).
//! * [`auth`], [`config`], [`tls`], [`model`], [`cli`], [`server`]: the rest.
//!
//! Error policy: each module has its own `thiserror` enum; nothing panics on input
//! from the network.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod hearing;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod permissions;
pub mod server;
pub mod sfu;
pub mod store;
pub mod tls;
