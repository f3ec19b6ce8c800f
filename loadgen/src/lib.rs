//! `openhearing-loadgen`: measures how much media one core of the OpenHearing SFU can
//! relay, how fast participants join and what each costs, side by side with Janus's
//! streaming plugin and a bare UDP relay (the floor, plain or batched with recvmmsg and
//! sendmmsg) on the same machine.
//!
//! * [`media`]: the pre-encoded VP8/Opus loops, stamped with their send time.
//! * [`metrics`]: per-receiver sequence and latency bookkeeping, /proc readings.
//! * [`server`]: the process under test (OpenHearing or the relay).
//! * [`janus`]: a Janus streaming-plugin subscriber over the HTTP API.
//! * [`lite`]: receive-only observers on rtc's sans-IO core, many per thread.
//! * [`run`]: scenarios, the measurement window, the report.
//! * [`soak`]: a long hearing with participants leaving and rejoining, checked for leaks.

pub mod janus;
pub mod lite;
pub mod media;
pub mod metrics;
pub mod run;
pub mod server;
pub mod soak;

pub use run::{run, JanusOptions, Observers, Report, RunConfig, Scenario, Target};
