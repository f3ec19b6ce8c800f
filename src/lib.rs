//! # OpenHearing
//!
//! An open-source server for online court hearings: a WebSocket signaling server, an SFU
//! media relay and (later) a recorder. See README.md for the architecture.

pub mod api;
pub mod auth;
pub mod config;
pub mod model;
pub mod store;
pub mod tls;
pub mod server;
