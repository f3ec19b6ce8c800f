//! Join tokens (HS256 JWTs carried in participants' join links) and the admin API keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
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
use crate::store::{Store, StoreError};
use crate::tls::write_private;

/// File under the data directory holding the join-token signing secret.
pub const SECRET_FILE: &str = "join-token.secret";
/// Legacy file under the data directory that held a generated admin API key in
/// plaintext; imported into the database (hash only) and deleted at start.
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
    #[error("admin keys: {0}")]
    Store(#[from] StoreError),
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

    /// The token of `participant`'s current link version in `hearing`.
    ///
    /// It is a function of stored state only (issued "at" the hearing's creation,
    /// expiring the configured time after the hearing's date), so issuing it again —
    /// `GET …/links` — hands out the same link, never a second valid one; a new link
    /// comes only with a new link version (revoke), which invalidates the old. The
    /// expiry is a backstop: the hearing itself refuses links before their window
    /// and after it is closed.
    pub fn issue(&self, hearing: &Hearing, participant: &Participant) -> Result<String, AuthError> {
        let iat = hearing.created_at.timestamp();
        let date = [hearing.scheduled_at, hearing.status.adjourned_to]
            .into_iter()
            .flatten()
            .map(|d| d.timestamp())
            .fold(iat, i64::max);
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
            exp: date.saturating_add(ttl),
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

/// Name under which the key generated at first start is stored.
pub const INITIAL_KEY_NAME: &str = "initial";
/// Name reported (and audited) for the key from `auth.admin_api_key`.
pub const CONFIG_KEY_NAME: &str = "config";

/// Hex SHA-256 of an admin key: the only form in which keys are stored.
pub fn admin_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// A new random admin key (`ohk_` and 48 hex digits, 192 bits).
pub fn generate_admin_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("ohk_{}", hex::encode(bytes))
}

/// The admin API keys: named keys whose SHA-256 is in the database, plus the key
/// from the configuration (`auth.admin_api_key`, name `config`), kept only as its
/// SHA-256 in memory. No plaintext key is stored anywhere.
#[derive(Clone)]
pub struct AdminKey {
    store: Arc<dyn Store>,
    configured: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(..)")
    }
}

/// What [`AdminKey::load_or_create`] did besides loading.
#[derive(Debug, Default)]
pub struct AdminKeySetup {
    /// A key generated now (stored as `initial`); print it once, it is kept nowhere.
    pub generated: Option<String>,
    /// A legacy `<data.dir>/admin-api-key` file whose key was imported and which
    /// was deleted.
    pub imported_file: Option<PathBuf>,
}

impl AdminKey {
    /// Prepares the admin keys at server start:
    ///
    /// * a legacy plaintext `<data_dir>/admin-api-key` file is imported (its SHA-256
    ///   stored under the name `initial`) and deleted;
    /// * with no key in the database and none configured, a key is generated, its
    ///   SHA-256 stored under the name `initial`, and the plaintext returned once so
    ///   the server can print it;
    /// * a configured key is accepted under the name `config` (never written).
    pub async fn load_or_create(
        configured: Option<&str>,
        data_dir: &Path,
        store: Arc<dyn Store>,
    ) -> Result<(AdminKey, AdminKeySetup), AuthError> {
        let mut setup = AdminKeySetup::default();
        let path = data_dir.join(ADMIN_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = text.trim();
                if key.is_empty() {
                    tracing::warn!(file = %path.display(), "deleting the empty legacy admin key file");
                } else {
                    store
                        .add_admin_key(INITIAL_KEY_NAME, &admin_key_sha256(key))
                        .await?;
                }
                std::fs::remove_file(&path).map_err(|source| AuthError::Write {
                    what: "legacy admin API key file (delete)",
                    path: path.clone(),
                    source,
                })?;
                tracing::warn!(
                    file = %path.display(),
                    "imported the admin API key from the legacy plaintext file into the database (hash only, name `{INITIAL_KEY_NAME}`) and deleted the file; the key itself keeps working"
                );
                setup.imported_file = Some(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AuthError::Read {
                    what: "legacy admin API key file",
                    path,
                    source,
                })
            }
        }
        if configured.is_none() && store.list_admin_keys().await?.is_empty() {
            let key = generate_admin_key();
            store
                .add_admin_key(INITIAL_KEY_NAME, &admin_key_sha256(&key))
                .await?;
            setup.generated = Some(key);
        }
        Ok((AdminKey::new(store, configured), setup))
    }

    /// Keys in `store`, plus `configured` (accepted under the name `config`).
    pub fn new(store: Arc<dyn Store>, configured: Option<&str>) -> AdminKey {
        AdminKey {
            store,
            configured: configured.map(|k| Sha256::digest(k.trim().as_bytes()).into()),
        }
    }

    /// The name of the key `presented` is, or `None` when it is no admin key.
    ///
    /// The configured key is compared in constant time. Stored keys are looked up by
    /// the SHA-256 of the presented key: the lookup's timing can tell at most
    /// something about a hash, never about a key.
    pub async fn verify(&self, presented: &str) -> Result<Option<String>, StoreError> {
        let presented = presented.trim();
        if presented.is_empty() {
            return Ok(None);
        }
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if let Some(configured) = &self.configured {
            if bool::from(configured.ct_eq(&hash)) {
                return Ok(Some(CONFIG_KEY_NAME.to_owned()));
            }
        }
        self.store.admin_key_name(&hex::encode(hash)).await
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
            party: Some("Bị cáo 1".into()),
        };
        let h = Hearing {
            id: hearing_id,
            case_number: "HS-123/2026".into(),
            title: "Phiên tòa hình sự".into(),
            created_at: chrono::Utc::now(),
            scheduled_at: None,
            recording: true,
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
    fn issuing_again_gives_the_same_link_and_expiry_counts_from_the_hearing_date() {
        let t = tokens(&[7u8; 32]);
        let (mut h, mut p) = sample();
        assert_eq!(t.issue(&h, &p).unwrap(), t.issue(&h, &p).unwrap());
        let later = h.created_at + chrono::Duration::days(10);
        h.scheduled_at = Some(later);
        let c = t.verify(&t.issue(&h, &p).unwrap()).unwrap();
        assert_eq!(c.iat, h.created_at.timestamp());
        assert_eq!(c.exp, later.timestamp() + 3600);
        h.status.adjourned_to = Some(later + chrono::Duration::days(30));
        let c = t.verify(&t.issue(&h, &p).unwrap()).unwrap();
        assert_eq!(
            c.exp,
            (later + chrono::Duration::days(30)).timestamp() + 3600
        );
        // A new link version is a new link.
        let before = t.issue(&h, &p).unwrap();
        p.link_version += 1;
        assert_ne!(t.issue(&h, &p).unwrap(), before);
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

    async fn store(dir: &Path) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.join("openhearing.db").display());
        Arc::new(crate::store::SqliteStore::open(&url).await.unwrap())
    }

    #[tokio::test]
    async fn admin_key_generated_once_stored_only_as_hash() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path()).await;
        let (k1, setup) = AdminKey::load_or_create(None, dir.path(), st.clone())
            .await
            .unwrap();
        let plain = setup.generated.expect("a new key is returned once");
        assert!(plain.starts_with("ohk_") && plain.len() == 52, "{plain}");
        assert_eq!(
            k1.verify(&plain).await.unwrap().as_deref(),
            Some(INITIAL_KEY_NAME)
        );
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists(), "no key file");
        let keys = st.list_admin_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, INITIAL_KEY_NAME);
        assert_eq!(
            st.admin_key_name(&admin_key_sha256(&plain)).await.unwrap(),
            Some(INITIAL_KEY_NAME.to_owned())
        );

        // The next start finds the key in the database and generates none.
        let (k2, again) = AdminKey::load_or_create(None, dir.path(), st.clone())
            .await
            .unwrap();
        assert!(again.generated.is_none());
        assert!(k2.verify(&plain).await.unwrap().is_some());
        assert_eq!(k2.verify("wrong").await.unwrap(), None);
        assert_eq!(k2.verify("").await.unwrap(), None);
        assert_eq!(st.list_admin_keys().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn configured_admin_key_is_accepted_and_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path()).await;
        let (k, setup) =
            AdminKey::load_or_create(Some("configured-key-0123456789"), dir.path(), st.clone())
                .await
                .unwrap();
        assert!(setup.generated.is_none(), "a configured key is enough");
        assert_eq!(
            k.verify("configured-key-0123456789")
                .await
                .unwrap()
                .as_deref(),
            Some(CONFIG_KEY_NAME)
        );
        assert_eq!(k.verify("configured-key-012345678").await.unwrap(), None);
        assert!(st.list_admin_keys().await.unwrap().is_empty());
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists());

        // Keys in the database work alongside it.
        st.add_admin_key("ops", &admin_key_sha256("ops-key-0123456789"))
            .await
            .unwrap();
        assert_eq!(
            k.verify("ops-key-0123456789").await.unwrap().as_deref(),
            Some("ops")
        );
    }

    #[tokio::test]
    async fn legacy_key_file_is_imported_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path()).await;
        std::fs::write(
            dir.path().join(ADMIN_KEY_FILE),
            "ohk_legacy-key-0123456789\n",
        )
        .unwrap();
        let (k, setup) = AdminKey::load_or_create(None, dir.path(), st.clone())
            .await
            .unwrap();
        assert!(setup.generated.is_none(), "the imported key is the key");
        assert_eq!(
            setup.imported_file.as_deref(),
            Some(dir.path().join(ADMIN_KEY_FILE).as_path())
        );
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists(), "file deleted");
        assert_eq!(
            k.verify("ohk_legacy-key-0123456789")
                .await
                .unwrap()
                .as_deref(),
            Some(INITIAL_KEY_NAME)
        );
    }
}
