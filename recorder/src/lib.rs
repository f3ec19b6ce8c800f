//! OpenHearing recorder (design doc below is filled in at the end).

pub mod cli;
pub mod depack;
pub mod info;
pub mod journal;
pub mod key;
pub mod manifest;
pub mod recorder;
pub mod render;
pub mod seal;
pub mod segment;
pub mod timing;
pub mod types;
pub mod verify;

pub use key::ArchiveKey;
pub use manifest::Manifest;
pub use recorder::{HearingRecorder, PushError, RecorderError, RecorderStats};
pub use seal::{scan_and_seal, seal_interrupted, SealError, SealOutcome};
pub use types::*;
pub use verify::{verify, Problem, VerifyReport};
