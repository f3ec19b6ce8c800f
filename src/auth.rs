//! Join tokens (HS256 JWTs carried in participants' join links) and the admin API key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use openhearing_signaling::ErrorCode;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::model::{Hearing, Participant, Role};
use crate::tls::write_private;

/// File under the data directory holding the join-token signing secret.
pub const SECRET_FILE: &str = "join-token.secret";
/// File under the data directory holding a generated admin API key.
pub const ADMIN_KEY_FILE: &str = "admin-api-key";
/// Length of the join-token secret, in bytes.
pub const SECRET_BYTES: usize = 32;
/// Seconds of clock skew tolerated when checking a token's expiry.
pub const EXPIRY_LEEWAY_SECONDS: u64 = 5;

/// What a join token says about its holder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JoinClaims {
    /// The participant id.
    pub sub: Uuid,
    pub hearing_id: Uuid,
    pub role: Role,
    pub name: String,
    pub site: String,
    pub case_number: String,
    pub title: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// The participant's link version when the token was issued; revoking the link
    /// increments it and so invalidates every earlier token.
    #[serde(default)]
    pub ver: u32,
}

/// Failures of the server's own key handling (not the user's fault).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {what} {}: {source}", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("join-token secret {} is {len} bytes long, expected at least {SECRET_BYTES}; delete it to generate a new one (this invalidates every issued join link)", path.display())]
    ShortSecret { path: PathBuf, len: usize },
    #[error("admin API key file {} is empty; delete it to generate a new key", path.display())]
    EmptyKeyFile { path: PathBuf },
    #[error("no admin API key file at {}: start the server once to generate it, or pass --api-key (or OPENHEARING_API_KEY)", path.display())]
    NoKeyFile { path: PathBuf },
    #[error("cannot sign join token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Why a presented join token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no join token was given")]
    Missing,
    #[error("the join token is not well-formed: {0}")]
    Malformed(String),
    #[error("the join token's signature is invalid (forged, or issued by another server)")]
    Invalid,
    #[error("the join token has expired; ask the court for a new link")]
    Expired,
}

impl TokenError {
    /// The signaling error code reporting this to a client.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Missing => ErrorCode::TokenMissing,
            TokenError::Malformed(_) => ErrorCode::TokenMalformed,
            TokenError::Invalid => ErrorCode::TokenInvalid,
            TokenError::Expired => ErrorCode::TokenExpired,
        }
    }
}

/// Issues and verifies join tokens with one HS256 secret.
pub struct JoinTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JoinTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JoinTokens {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = EXPIRY_LEEWAY_SECONDS;
        validation.validate_exp = true;
        JoinTokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// How long issued tokens stay valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `participant` of `hearing`, valid for the configured time from now.
    pub fn issue(&self, hearing: &Hearing, participant: &Participant) -> Result<String, AuthError> {
        let iat = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.issue_claims(&JoinClaims {
            sub: participant.id,
            hearing_id: hearing.id,
            role: participant.role,
            name: participant.name.clone(),
            site: participant.site.clone(),
            case_number: hearing.case_number.clone(),
            title: hearing.title.clone(),
            iat,
            exp: iat.saturating_add(ttl),
            ver: participant.link_version,
        })
    }

    /// A token with exactly these claims.
    pub fn issue_claims(&self, claims: &JoinClaims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(AuthError::Sign)
    }

    /// Checks the signature and expiry of `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<JoinClaims, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        match jsonwebtoken::decode::<JoinClaims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::Invalid,
                _ => TokenError::Malformed(e.to_string()),
            }),
        }
    }
}

/// The join-token secret: 32 random bytes in `<data_dir>/join-token.secret` (mode
/// 0600), generated on first use and reused afterwards.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, AuthError> {
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= SECRET_BYTES => Ok(bytes),
        Ok(bytes) => Err(AuthError::ShortSecret {
            path,
            len: bytes.len(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; SECRET_BYTES];
            rand::rng().fill_bytes(&mut secret);
            create_private(data_dir, &path, &secret, "join-token secret")?;
            Ok(secret)
        }
        Err(source) => Err(AuthError::Read {
            what: "join-token secret",
            path,
            source,
        }),
    }
}

fn create_private(
    data_dir: &Path,
    path: &Path,
    contents: &[u8],
    what: &'static str,
) -> Result<(), AuthError> {
    std::fs::create_dir_all(data_dir).map_err(|source| AuthError::Write {
        what: "data directory",
        path: data_dir.to_owned(),
        source,
    })?;
    write_private(path, contents).map_err(|source| AuthError::Write {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The admin API key. Only its SHA-256 is kept in memory.
#[derive(Clone)]
pub struct AdminKey {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(..)")
    }
}

impl AdminKey {
    /// The configured key if any (never written to disk); else the key stored in
    /// `<data_dir>/admin-api-key`; else a new random key stored there (mode 0600). The
    /// plaintext is returned only when the key was newly generated, so the server can
    /// print it once.
    pub fn load_or_create(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> Result<(AdminKey, Option<String>), AuthError> {
        if let Some(key) = configured {
            return Ok((AdminKey::from_plaintext(key.trim()), None));
        }
        match read_admin_key_file(data_dir) {
            Ok(key) => Ok((AdminKey::from_plaintext(&key), None)),
            Err(AuthError::NoKeyFile { .. }) => {
                let mut bytes = [0u8; 24];
                rand::rng().fill_bytes(&mut bytes);
                let key = format!("ohk_{}", hex::encode(bytes));
                let path = data_dir.join(ADMIN_KEY_FILE);
                create_private(
                    data_dir,
                    &path,
                    format!("{key}\n").as_bytes(),
                    "admin API key",
                )?;
                Ok((AdminKey::from_plaintext(&key), Some(key)))
            }
            Err(e) => Err(e),
        }
    }

    pub fn from_plaintext(key: &str) -> AdminKey {
        AdminKey {
            hash: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the key, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.hash.ct_eq(&hash))
    }
}

/// The generated admin key stored in `<data_dir>/admin-api-key` (for the local CLI).
pub fn read_admin_key_file(data_dir: &Path) -> Result<String, AuthError> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim();
            if key.is_empty() {
                Err(AuthError::EmptyKeyFile { path })
            } else {
                Ok(key.to_owned())
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(AuthError::NoKeyFile { path }),
        Err(source) => Err(AuthError::Read {
            what: "admin API key",
            path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Hearing, Participant) {
        let hearing_id = Uuid::new_v4();
        let p = Participant {
            id: Uuid::new_v4(),
            hearing_id,
            name: "Nguyễn Văn A".into(),
            role: Role::Defendant,
            site: "Trại tạm giam số 1".into(),
            site_kind: crate::model::SiteKind::Detention,
            admission: crate::model::Admission::Lobby,
            muted: false,
            link_version: 3,
        };
        let h = Hearing {
            id: hearing_id,
            case_number: "HS-123/2026".into(),
            title: "Phiên tòa hình sự".into(),
            created_at: chrono::Utc::now(),
            scheduled_at: None,
            status: crate::model::Status::scheduled(chrono::Utc::now()),
            sites: vec![],
            participants: vec![p.clone()],
        };
        (h, p)
    }

    fn tokens(secret: &[u8]) -> JoinTokens {
        JoinTokens::new(secret, Duration::from_secs(3600))
    }

    #[test]
    fn round_trip() {
        let t = tokens(&[7u8; 32]);
        let (h, p) = sample();
        let jwt = t.issue(&h, &p).unwrap();
        let c = t.verify(&jwt).unwrap();
        assert_eq!(c.sub, p.id);
        assert_eq!(c.hearing_id, h.id);
        assert_eq!(c.role, Role::Defendant);
        assert_eq!(c.name, p.name);
        assert_eq!(c.site, p.site);
        assert_eq!(c.case_number, h.case_number);
        assert_eq!(c.title, h.title);
        assert_eq!(c.exp - c.iat, 3600);
    }

    #[test]
    fn forged_is_invalid() {
        let (h, p) = sample();
        let jwt = tokens(&[1u8; 32]).issue(&h, &p).unwrap();
        let e = tokens(&[2u8; 32]).verify(&jwt).unwrap_err();
        assert_eq!(e, TokenError::Invalid);
        assert_eq!(e.code(), ErrorCode::TokenInvalid);
    }

    #[test]
    fn garbage_is_malformed_and_empty_is_missing() {
        let t = tokens(&[7u8; 32]);
        let e = t.verify("not.a.jwt").unwrap_err();
        assert!(matches!(e, TokenError::Malformed(_)), "{e:?}");
        assert_eq!(e.code(), ErrorCode::TokenMalformed);
        assert!(matches!(t.verify("garbage"), Err(TokenError::Malformed(_))));
        assert_eq!(t.verify("  ").unwrap_err().code(), ErrorCode::TokenMissing);
    }

    #[test]
    fn expired_is_expired() {
        let t = tokens(&[7u8; 32]);
        let (h, p) = sample();
        let jwt = t.issue(&h, &p).unwrap();
        let mut claims = t.verify(&jwt).unwrap();
        let now = chrono::Utc::now().timestamp();
        claims.iat = now - 7200;
        claims.exp = now - 60;
        let old = t.issue_claims(&claims).unwrap();
        let e = t.verify(&old).unwrap_err();
        assert_eq!(e, TokenError::Expired);
        assert_eq!(e.code(), ErrorCode::TokenExpired);

        // Within the leeway it still passes.
        claims.exp = now - 2;
        assert!(t.verify(&t.issue_claims(&claims).unwrap()).is_ok());
    }

    #[test]
    fn secret_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let a = load_or_create_secret(&data).unwrap();
        let b = load_or_create_secret(&data).unwrap();
        assert_eq!(a.len(), SECRET_BYTES);
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(data.join(SECRET_FILE), b"short").unwrap();
        let e = load_or_create_secret(&data).unwrap_err();
        assert!(matches!(e, AuthError::ShortSecret { len: 5, .. }), "{e}");
    }

    #[test]
    fn admin_key_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, plain) = AdminKey::load_or_create(None, dir.path()).unwrap();
        let plain = plain.expect("a new key is returned once");
        assert!(k1.verify(&plain));
        assert_eq!(read_admin_key_file(dir.path()).unwrap(), plain);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let (k2, again) = AdminKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(again, None);
        assert!(k2.verify(&plain));
        assert!(!k2.verify("wrong"));
        assert!(!k2.verify(""));
    }

    #[test]
    fn configured_admin_key_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let (k, plain) =
            AdminKey::load_or_create(Some("configured-key-0123456789"), dir.path()).unwrap();
        assert_eq!(plain, None);
        assert!(k.verify("configured-key-0123456789"));
        assert!(!k.verify("configured-key-012345678"));
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists());
        let e = read_admin_key_file(dir.path()).unwrap_err();
        assert!(e.to_string().contains("--api-key"), "{e}");
    }
}
