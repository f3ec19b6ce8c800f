//! # OpenHearing
//!
//! An open-source server for online court hearings: a WebSocket signaling server, an SFU
//! media relay and (later) a recorder. See README.md for the architecture.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod model;
pub mod server;
pub mod store;
pub mod tls;
