//! Entry points for the server's command line (`openhearing archive verify|info|render`).
//!
//! Each writes its human-readable output to `out` and returns the process exit code:
//! `0` success; `1` verification found problems (verify) ; `2` the command could not
//! run (unreadable archive, bad key file, render failure). Convert with
//! `std::process::ExitCode::from(code)`.

use std::io::Write;
use std::path::Path;

use crate::key::read_public_key;
use crate::render::{render, RenderOptions};
use crate::verify::verify;

fn trusted_key(
    public_key_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<Option<ed25519_dalek::VerifyingKey>, u8> {
    match public_key_file {
        None => Ok(None),
        Some(p) => match read_public_key(p) {
            Ok(k) => Ok(Some(k)),
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                Err(2)
            }
        },
    }
}

/// `openhearing archive verify DIR [--public-key FILE]`: prints `OK: ...` or
/// `FAILED: ...` followed by one line per problem. Exit 0 only when nothing is wrong.
pub fn verify_command(dir: &Path, public_key_file: Option<&Path>, out: &mut dyn Write) -> u8 {
    if !dir.is_dir() {
        let _ = writeln!(out, "error: {} is not a folder", dir.display());
        return 2;
    }
    let key = match trusted_key(public_key_file, out) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let report = verify(dir, key.as_ref());
    let _ = write!(out, "{report}");
    if report.ok() {
        0
    } else {
        1
    }
}

/// `openhearing archive info DIR [--public-key FILE]`: participants, durations, gaps,
/// verification status. Exit 0 when the summary could be made (even if verification
/// failed: the table says so), 2 otherwise.
pub fn info_command(dir: &Path, public_key_file: Option<&Path>, out: &mut dyn Write) -> u8 {
    let key = match trusted_key(public_key_file, out) {
        Ok(k) => k,
        Err(code) => return code,
    };
    match crate::info::info(dir, key.as_ref()) {
        Ok(i) => {
            let _ = write!(out, "{i}");
            0
        }
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            2
        }
    }
}

/// `openhearing archive render DIR -o FILE.mp4`: renders with a progress bar on a
/// terminal, then prints what was written.
pub fn render_command(dir: &Path, output: &Path, opts: &RenderOptions, out: &mut dyn Write) -> u8 {
    match render(dir, output, opts) {
        Ok(r) => {
            let _ = writeln!(
                out,
                "wrote {}: {:.1} s, {} participant(s), {} audio track(s), video {}",
                r.output.display(),
                r.duration_s,
                r.cells,
                r.audio_tracks,
                r.video_encoder
            );
            0
        }
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            2
        }
    }
}
