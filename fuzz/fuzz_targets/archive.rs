//! A whole archive folder as `openhearing-recorder info`/`verify` read it: the
//! journal and the manifest (and its signature) from a disk that may be damaged or
//! tampered with, through `info::info`, which reads the journal, builds the manifest
//! and runs `verify` (chain, order, manifest against journal, signature), or through
//! `verify` alone when `info` cannot read the journal. Input: two
//! bytes of journal length, the journal, then the manifest; the signature is the
//! manifest's last 128 bytes (hex-looking or not). Files go to a folder of this
//! process under the temp dir (/dev/shm when it exists, to keep it off the disk).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use openhearing_recorder::journal::JOURNAL_FILE;
use openhearing_recorder::manifest::{MANIFEST_FILE, SIGNATURE_FILE};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("openhearing-fuzz-archive-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz folder");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let [hi, lo, rest @ ..] = data else { return };
    let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
    let (journal, manifest) = rest.split_at(n);
    let d = dir();
    std::fs::write(d.join(JOURNAL_FILE), journal).expect("write journal");
    let sig = &manifest[manifest.len().saturating_sub(128)..];
    std::fs::write(d.join(MANIFEST_FILE), manifest).expect("write manifest");
    std::fs::write(d.join(SIGNATURE_FILE), sig).expect("write signature");
    match openhearing_recorder::info::info(d, None) {
        // `info` has run `verify` on the folder already (its `verification`).
        Ok(info) => {
            let _ = (info.verification.ok(), info.to_string());
        }
        // A journal `info` cannot read still goes through `verify` on its own.
        Err(e) => {
            let _ = e.to_string();
            let report = openhearing_recorder::verify(d, None);
            let _ = (report.ok(), report.to_string());
        }
    }
});
