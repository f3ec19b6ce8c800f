//! The server's archive signing key (Ed25519).
//!
//! Files, in the folder given to [`ArchiveKey::load_or_create`]:
//! - `archive-signing.key`: the 32-byte Ed25519 seed as 64 lower-case hex digits and
//!   a newline, mode 0600. Whoever holds it can sign manifests: keep it off the
//!   recordings disk's backups if those leave the court.
//! - `archive-signing.pub`: the 32-byte public key as 64 hex digits and a newline.
//!   Give it to whoever must verify archives (`--public-key FILE`).
//!
//! Raw hex was chosen over PKCS#8 so the files can be read and compared by eye and
//! with `cat`; the public key is also written into each archive's first journal
//! entry and manifest.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// File name of the private key.
pub const KEY_FILE: &str = "archive-signing.key";
/// File name of the exported public key.
pub const PUB_FILE: &str = "archive-signing.pub";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("key file {path} is not 64 hex digits of an Ed25519 key")]
    Malformed { path: PathBuf },
    #[error("no randomness available from the operating system: {0}")]
    Random(String),
}

/// The Ed25519 key that signs archive manifests.
#[derive(Clone)]
pub struct ArchiveKey {
    signing: SigningKey,
}

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveKey")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl ArchiveKey {
    /// Loads `dir/archive-signing.key`, or generates it (and `archive-signing.pub`)
    /// when missing. Returns whether it was created. The public key file is rewritten
    /// if absent, so it always matches the private key.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), KeyError> {
        let key_path = dir.join(KEY_FILE);
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        let created;
        let key = match fs::read_to_string(&key_path) {
            Ok(text) => {
                created = false;
                let seed = parse_hex32(&text).ok_or_else(|| KeyError::Malformed {
                    path: key_path.clone(),
                })?;
                Self {
                    signing: SigningKey::from_bytes(&seed),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                created = true;
                fs::create_dir_all(dir).map_err(io_err(dir))?;
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
                let key = Self {
                    signing: SigningKey::from_bytes(&seed),
                };
                let mut opts = OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&key_path).map_err(io_err(&key_path))?;
                f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(io_err(&key_path))?;
                key
            }
            Err(source) => {
                return Err(KeyError::Io {
                    path: key_path,
                    source,
                })
            }
        };
        let pub_path = dir.join(PUB_FILE);
        let want = format!("{}\n", key.public_hex());
        if fs::read_to_string(&pub_path).ok().as_deref() != Some(want.as_str()) {
            fs::write(&pub_path, want).map_err(io_err(&pub_path))?;
        }
        Ok((key, created))
    }

    /// A key from a 32-byte seed (tests, or keys kept elsewhere).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as 64 hex digits.
    pub fn public_hex(&self) -> String {
        hex::encode(self.verifying_key().as_bytes())
    }

    /// Signs `msg`; returns the 64-byte signature as hex.
    pub fn sign_hex(&self, msg: &[u8]) -> String {
        hex::encode(self.signing.sign(msg).to_bytes())
    }
}

/// Reads a public key file (64 hex digits).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_public_hex(&text).ok_or_else(|| KeyError::Malformed {
        path: path.to_path_buf(),
    })
}

/// Parses a hex public key.
pub fn parse_public_hex(text: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&parse_hex32(text)?).ok()
}

/// Checks a hex signature over `msg`.
pub fn verify_hex(key: &VerifyingKey, msg: &[u8], sig_hex: &str) -> bool {
    let Ok(bytes) = hex::decode(sig_hex.trim()) else {
        return false;
    };
    let Ok(arr) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return false;
    };
    key.verify(msg, &Signature::from_bytes(&arr)).is_ok()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_same_key_with_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (k1, created1) = ArchiveKey::load_or_create(dir.path()).expect("create");
        let (k2, created2) = ArchiveKey::load_or_create(dir.path()).expect("load");
        assert!(created1 && !created2);
        assert_eq!(k1.public_hex(), k2.public_hex());
        let public = read_public_key(&dir.path().join(PUB_FILE)).expect("pub");
        let sig = k1.sign_hex(b"manifest");
        assert!(verify_hex(&public, b"manifest", &sig));
        assert!(!verify_hex(&public, b"manifesT", &sig));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn malformed_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), "not hex").expect("write");
        assert!(matches!(
            ArchiveKey::load_or_create(dir.path()),
            Err(KeyError::Malformed { .. })
        ));
    }
}
