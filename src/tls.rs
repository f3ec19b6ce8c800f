//! The server's TLS certificate: a configured one, or a self-signed one generated on
//! first start into `<data_dir>/tls/` and reused afterwards.

use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsConfig;

/// A loaded certificate, ready for the HTTPS listener.
#[derive(Clone)]
pub struct TlsMaterial {
    pub rustls: RustlsConfig,
    /// SHA-256 of the DER leaf certificate, as upper-case hex pairs joined by `:`.
    pub fingerprint_sha256: String,
    pub cert_path: PathBuf,
    /// Whether the certificate is a self-signed one this server generated.
    pub generated: bool,
}

impl TlsMaterial {
    /// The rustls configuration (ALPN `h2`, `http/1.1`) for [`crate::server::run_tls`].
    pub fn server_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        self.rustls.get_inner()
    }
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("cert_path", &self.cert_path)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write TLS {what} {}: {source}", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate file {} contains no PEM certificate ({reason})", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("TLS key file {} contains no PEM private key ({reason})", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("TLS certificate {} and key {} cannot be used together: {source}", cert.display(), key.display())]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Installs the ring crypto provider as rustls' process default, once. A provider
/// already installed (by us or anyone else) is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads the configured certificate, or generates/reuses a self-signed one valid for
/// `hostnames`, `localhost` and `127.0.0.1`.
pub async fn load_or_create(
    tls: &TlsConfig,
    data_dir: &Path,
    hostnames: &[String],
) -> Result<TlsMaterial, TlsError> {
    install_crypto_provider();
    let (cert_path, key_path, generated) = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let dir = data_dir.join("tls");
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            if !(cert.exists() && key.exists()) {
                generate(&dir, &cert, &key, hostnames)?;
            }
            (cert, key, true)
        }
    };

    let cert_pem = read(&cert_path, "certificate")?;
    let key_pem = read(&key_path, "key")?;
    let first = CertificateDer::pem_slice_iter(&cert_pem)
        .next()
        .ok_or_else(|| TlsError::BadCertificate {
            path: cert_path.clone(),
            reason: "no CERTIFICATE block found".into(),
        })?
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.clone(),
        reason: e.to_string(),
    })?;
    let fingerprint_sha256 = fingerprint(first.as_ref());
    let rustls = RustlsConfig::from_pem(cert_pem, key_pem)
        .await
        .map_err(|source| TlsError::Rustls {
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        })?;
    Ok(TlsMaterial {
        rustls,
        fingerprint_sha256,
        cert_path,
        generated,
    })
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// `AB:CD:...` SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn generate(dir: &Path, cert: &Path, key: &Path, hostnames: &[String]) -> Result<(), TlsError> {
    let mut names: Vec<String> = Vec::new();
    for n in hostnames
        .iter()
        .map(String::as_str)
        .chain(["localhost", "127.0.0.1"])
    {
        let n = n.trim();
        if !n.is_empty() && !names.iter().any(|m| m == n) {
            names.push(n.to_owned());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "OpenHearing self-signed");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "OpenHearing");
    // Valid from the start of this year for ten years: the certificate is pinned by
    // fingerprint or trusted explicitly, so a long life avoids surprise expiry.
    let year = chrono::Datelike::year(&chrono::Utc::now());
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let signing_key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&signing_key)?;

    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        what: "directory",
        path: dir.to_owned(),
        source,
    })?;
    write_private(key, signing_key.serialize_pem().as_bytes()).map_err(|source| {
        TlsError::Write {
            what: "key",
            path: key.to_owned(),
            source,
        }
    })?;
    std::fs::write(cert, certificate.pem()).map_err(|source| TlsError::Write {
        what: "certificate",
        path: cert.to_owned(),
        source,
    })?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// Writes `contents` to a new file readable only by its owner (mode 0600 on Unix).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        // The mode above only applies to new files; tighten an existing one too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_files() -> TlsConfig {
        TlsConfig {
            enabled: true,
            cert_file: None,
            key_file: None,
        }
    }

    #[tokio::test]
    async fn generates_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["court.example".to_owned()];
        let a = load_or_create(&no_files(), dir.path(), &hosts)
            .await
            .unwrap();
        assert!(a.generated);
        assert_eq!(a.cert_path, dir.path().join("tls/cert.pem"));
        assert_eq!(a.fingerprint_sha256.len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = load_or_create(&no_files(), dir.path(), &hosts)
            .await
            .unwrap();
        assert_eq!(a.fingerprint_sha256, b.fingerprint_sha256);

        // The generated files also load as configured files.
        let configured = TlsConfig {
            enabled: true,
            cert_file: Some(dir.path().join("tls/cert.pem")),
            key_file: Some(dir.path().join("tls/key.pem")),
        };
        let c = load_or_create(&configured, Path::new("/nonexistent"), &[])
            .await
            .unwrap();
        assert!(!c.generated);
        assert_eq!(c.fingerprint_sha256, a.fingerprint_sha256);
    }

    #[tokio::test]
    async fn garbage_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "this is not a certificate").unwrap();
        std::fs::write(&key, "nor a key").unwrap();
        let cfg = TlsConfig {
            enabled: true,
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
        };
        let e = load_or_create(&cfg, dir.path(), &[]).await.unwrap_err();
        assert!(matches!(e, TlsError::BadCertificate { .. }), "{e}");
        assert!(e.to_string().contains(&cert.display().to_string()), "{e}");

        // A good certificate with a garbage key names the key file.
        let gen = load_or_create(&no_files(), dir.path(), &[]).await.unwrap();
        let cfg = TlsConfig {
            enabled: true,
            cert_file: Some(gen.cert_path.clone()),
            key_file: Some(key.clone()),
        };
        let e = load_or_create(&cfg, dir.path(), &[]).await.unwrap_err();
        assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
        assert!(e.to_string().contains(&key.display().to_string()), "{e}");

        let cfg = TlsConfig {
            enabled: true,
            cert_file: Some(dir.path().join("missing.pem")),
            key_file: Some(key),
        };
        let e = load_or_create(&cfg, dir.path(), &[]).await.unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
