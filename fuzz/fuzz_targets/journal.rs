//! The archive journal reader (`journal::parse_lines_lenient`, what sealing, `info`
//! and `render` read a journal with) and the manifest built from it
//! (`manifest::build`), fed a journal from a disk that may be damaged or tampered
//! with. A journal it accepts must survive the round trip through the writer's
//! encoding, and the canonical hash must be computable for every line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use openhearing_recorder::journal::{entry_hash, parse_lines_lenient, Line};
use openhearing_recorder::manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(read) = parse_lines_lenient(Path::new("journal.jsonl"), data) else {
        return;
    };
    assert!(read.good_len as usize <= data.len());
    for line in &read.lines {
        let value = serde_json::to_value(line).expect("a parsed line encodes");
        let _ = entry_hash(&value);
        let back: Line = serde_json::from_value(value).expect("an encoded line decodes");
        assert_eq!(&back, line, "round trip changed the line");
    }
    if let Ok(m) = manifest::build(&read.lines) {
        let bytes = serde_json::to_vec(&m).expect("a manifest encodes");
        let _: manifest::Manifest = serde_json::from_slice(&bytes).expect("and decodes");
    }
});
