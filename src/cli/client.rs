//! The admin API's HTTP client, as the `openhearing hearing ...` commands use it:
//! one method per route, speaking the API's own wire types
//! ([`crate::api::admin::dto`]) so client and server cannot disagree on a field. An
//! error answer becomes [`CliError::Api`] with the server's code and message.
//!
//! Also here: how the client finds the server, its key and the certificate to trust
//! when the options leave them out (from the local configuration).

use std::path::PathBuf;

use uuid::Uuid;

use super::{ApiOptions, CliError};
use crate::api::admin::dto::{
    AuditTrail, CreateHearingRequest, CreateParticipantRequest, ErrorBody, HearingDetail,
    HearingLinks, HearingList, IssuedLink, RemoveQuery, StateRequest,
};
use crate::config::Config;
use crate::model::{Hearing, HearingUpdate, NewHearing, NewParticipant, Participant};

/// How the client treats the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTls {
    /// Public roots only.
    Default,
    /// Public roots plus this PEM certificate (the server's self-signed one).
    Trust(PathBuf),
    /// No verification at all.
    Insecure,
}

/// A client of the admin API.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    api_key: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(base_url: &str, api_key: &str, tls: &ClientTls) -> Result<Self, CliError> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 9 {
            return Err(CliError::BadServerUrl(base_url.to_owned()));
        }
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("openhearing-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30));
        match tls {
            ClientTls::Default => {}
            ClientTls::Insecure => builder = builder.danger_accept_invalid_certs(true),
            ClientTls::Trust(path) => {
                let pem = std::fs::read(path).map_err(|source| CliError::ReadCert {
                    path: path.clone(),
                    source,
                })?;
                let cert = reqwest::Certificate::from_pem(&pem).map_err(CliError::Client)?;
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(ApiClient {
            base,
            api_key: api_key.trim().to_owned(),
            http: builder.build().map_err(CliError::Client)?,
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, CliError> {
        let response = request
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|source| CliError::Request {
                url: url.to_owned(),
                source,
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|source| CliError::Request {
            url: url.to_owned(),
            source,
        })?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| CliError::UnexpectedResponse {
                status: status.as_u16(),
                detail: e.to_string(),
            })
        } else if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
            Err(CliError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            })
        } else {
            Err(CliError::UnexpectedResponse {
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            })
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/hearings{path}", self.base)
    }

    pub async fn create_hearing(&self, new: &NewHearing) -> Result<HearingLinks, CliError> {
        let url = self.url("");
        let body = CreateHearingRequest::from(new);
        self.send(self.http.post(&url).json(&body), &url).await
    }

    pub async fn list_hearings(&self) -> Result<Vec<Hearing>, CliError> {
        let url = self.url("");
        let list: HearingList = self.send(self.http.get(&url), &url).await?;
        Ok(list.hearings)
    }

    pub async fn get_hearing(&self, id: Uuid) -> Result<HearingDetail, CliError> {
        let url = self.url(&format!("/{id}"));
        self.send(self.http.get(&url), &url).await
    }

    pub async fn update_hearing(
        &self,
        id: Uuid,
        update: &HearingUpdate,
    ) -> Result<HearingDetail, CliError> {
        let url = self.url(&format!("/{id}"));
        self.send(self.http.patch(&url).json(update), &url).await
    }

    pub async fn set_state(&self, id: Uuid, req: &StateRequest) -> Result<HearingDetail, CliError> {
        let url = self.url(&format!("/{id}/state"));
        self.send(self.http.post(&url).json(req), &url).await
    }

    pub async fn add_participant(
        &self,
        id: Uuid,
        new: &NewParticipant,
    ) -> Result<IssuedLink, CliError> {
        let url = self.url(&format!("/{id}/participants"));
        let body = CreateParticipantRequest::from(new);
        self.send(self.http.post(&url).json(&body), &url).await
    }

    pub async fn remove_participant(
        &self,
        id: Uuid,
        participant: Uuid,
        reason: Option<&str>,
    ) -> Result<Participant, CliError> {
        let url = self.url(&format!("/{id}/participants/{participant}"));
        let query = RemoveQuery {
            reason: reason.map(str::to_owned),
        };
        self.send(self.http.delete(&url).query(&query), &url).await
    }

    pub async fn revoke_link(&self, id: Uuid, participant: Uuid) -> Result<IssuedLink, CliError> {
        let url = self.url(&format!("/{id}/participants/{participant}/revoke"));
        self.send(self.http.post(&url), &url).await
    }

    pub async fn hearing_links(&self, id: Uuid) -> Result<HearingLinks, CliError> {
        let url = self.url(&format!("/{id}/links"));
        self.send(self.http.get(&url), &url).await
    }

    pub async fn audit(&self, id: Uuid) -> Result<AuditTrail, CliError> {
        let url = self.url(&format!("/{id}/audit"));
        self.send(self.http.get(&url), &url).await
    }
}

/// The admin API URL a local server with `config` listens on.
pub fn default_server_url(config: &Config) -> String {
    let scheme = if config.server.tls.enabled {
        "https"
    } else {
        "http"
    };
    let listen = config.server.listen;
    let host = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("{scheme}://{host}:{}", listen.port())
}

/// Builds the client from the options, filling gaps from the local configuration.
pub fn client_from_options(opts: &ApiOptions) -> Result<ApiClient, CliError> {
    let config = Config::load(opts.config.as_deref())?;
    client_with_config(opts, &config)
}

fn client_with_config(opts: &ApiOptions, config: &Config) -> Result<ApiClient, CliError> {
    let server = opts
        .server
        .clone()
        .unwrap_or_else(|| default_server_url(config));
    let api_key = opts
        .api_key
        .clone()
        .or_else(|| config.auth.admin_api_key.clone())
        .filter(|k| !k.trim().is_empty())
        .ok_or(CliError::NoApiKey)?;
    let tls = if opts.insecure {
        ClientTls::Insecure
    } else {
        let generated = config.data.dir.join("tls").join("cert.pem");
        let trust = config
            .server
            .tls
            .cert_file
            .clone()
            .filter(|p| p.exists())
            .or_else(|| generated.exists().then_some(generated));
        match trust {
            Some(p) if server.starts_with("https://") => ClientTls::Trust(p),
            _ => ClientTls::Default,
        }
    };
    ApiClient::new(&server, &api_key, &tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::admin::tests::{state, KEY};
    use crate::api::admin::{routes, AdminState};
    use crate::cli::parse::parse_participant_spec;
    use crate::model::Role;

    #[test]
    fn derived_defaults() {
        let c = Config::from_toml_str("", "t").unwrap();
        assert_eq!(default_server_url(&c), "https://127.0.0.1:8443");
        let c = Config::from_toml_str(
            "[server]\nlisten = \"192.0.2.1:9000\"\n[server.tls]\nenabled = false\n",
            "t",
        )
        .unwrap();
        assert_eq!(default_server_url(&c), "http://192.0.2.1:9000");

        // No key anywhere: the error says how to provide one. A legacy key file is
        // not read (the server imports and deletes it).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-api-key"), "k-from-file\n").unwrap();
        let text = format!("[data]\ndir = {:?}\n", dir.path().display().to_string());
        let c = Config::from_toml_str(&text, "t").unwrap();
        let e = client_with_config(&ApiOptions::default(), &c).unwrap_err();
        assert!(matches!(e, CliError::NoApiKey), "{e}");
        assert!(e.to_string().contains("--api-key"), "{e}");
        assert!(e.to_string().contains("OPENHEARING_API_KEY"), "{e}");
        // The configured key is used, and --api-key wins over it.
        let text = format!(
            "[data]\ndir = {:?}\n[auth]\nadmin_api_key = \"configured-key-0123456789abcdef0123456\"\n",
            dir.path().display().to_string()
        );
        let c = Config::from_toml_str(&text, "t").unwrap();
        let client = client_with_config(&ApiOptions::default(), &c).unwrap();
        assert_eq!(client.api_key, "configured-key-0123456789abcdef0123456");
        assert_eq!(client.base, "https://127.0.0.1:8443");
        let opts = ApiOptions {
            api_key: Some("from-the-option".into()),
            ..ApiOptions::default()
        };
        assert_eq!(
            client_with_config(&opts, &c).unwrap().api_key,
            "from-the-option"
        );

        let e = ApiClient::new("ftp://x", "k", &ClientTls::Default).unwrap_err();
        assert!(matches!(e, CliError::BadServerUrl(_)));
    }

    async fn serve_plain(state: AdminState) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = routes::<AdminState>().with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    fn sample() -> NewHearing {
        NewHearing {
            scheduled_at: None,
            recording: None,
            sites: Vec::new(),
            case_number: "HS-123/2026".into(),
            title: "Vụ án trộm cắp tài sản".into(),
            participants: vec![
                parse_participant_spec("Nguyễn Văn A:presiding_judge:Phòng xử án 1").unwrap(),
                parse_participant_spec("Trần Thị B:defendant:Trại tạm giam số 1").unwrap(),
            ],
        }
    }

    #[tokio::test]
    async fn client_against_real_http() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let tokens = st.tokens.clone();
        let base = serve_plain(st).await;
        let client = ApiClient::new(&base, KEY, &ClientTls::Default).unwrap();

        let links = client.create_hearing(&sample()).await.unwrap();
        assert_eq!(links.participants.len(), 2);
        assert_eq!(links.participants[0].name, "Nguyễn Văn A");
        let url = &links.participants[1].join_url;
        let token = url.split_once("#token=").unwrap().1;
        assert_eq!(
            tokens.verify(token).unwrap().sub,
            links.participants[1].participant_id
        );

        // The --json shape: hearing_id and participants with the documented fields.
        let json = serde_json::to_value(&links).unwrap();
        for key in ["participant_id", "name", "role", "site", "join_url"] {
            assert!(json["participants"][0].get(key).is_some(), "{key}");
        }
        assert!(json.get("hearing_id").is_some());

        let list = client.list_hearings().await.unwrap();
        assert_eq!(list.len(), 1);
        let h = client.get_hearing(links.hearing_id).await.unwrap();
        assert_eq!(h.hearing.participants[1].role, Role::Defendant);
        let again = client.hearing_links(links.hearing_id).await.unwrap();
        assert_eq!(again.participants.len(), 2);

        // Server-side errors come back with their code and message.
        let e = client.get_hearing(Uuid::new_v4()).await.unwrap_err();
        assert!(
            matches!(&e, CliError::Api { status: 404, code, .. } if code == "hearing_not_found"),
            "{e}"
        );
        let mut bad = sample();
        bad.participants[0].site = " ".into();
        let e = client.create_hearing(&bad).await.unwrap_err();
        assert!(e.to_string().contains("participants[0].site"), "{e}");

        let wrong = ApiClient::new(&base, "wrong-key", &ClientTls::Default).unwrap();
        let e = wrong.list_hearings().await.unwrap_err();
        assert!(matches!(&e, CliError::Api { status: 401, .. }), "{e}");
    }

    #[tokio::test]
    async fn client_trusts_generated_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let tls_cfg = crate::config::TlsConfig {
            enabled: true,
            cert_file: None,
            key_file: None,
        };
        let material = crate::tls::load_or_create(&tls_cfg, dir.path(), &[])
            .await
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = routes::<AdminState>().with_state(st);
        let server = axum_server::from_tcp_rustls(listener, material.rustls.clone()).unwrap();
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        let base = format!("https://127.0.0.1:{}", addr.port());

        // Without trusting the self-signed certificate the connection is refused ...
        let plain = ApiClient::new(&base, KEY, &ClientTls::Default).unwrap();
        assert!(matches!(
            plain.list_hearings().await,
            Err(CliError::Request { .. })
        ));
        // ... trusting <data.dir>/tls/cert.pem works, and so does --insecure.
        let opts = ApiOptions {
            server: Some(base.clone()),
            api_key: Some(KEY.into()),
            ..ApiOptions::default()
        };
        let text = format!("[data]\ndir = {:?}\n", dir.path().display().to_string());
        let config = Config::from_toml_str(&text, "t").unwrap();
        let trusted = client_with_config(&opts, &config).unwrap();
        assert!(trusted.list_hearings().await.unwrap().is_empty());
        let insecure = ApiClient::new(&base, KEY, &ClientTls::Insecure).unwrap();
        assert!(insecure.list_hearings().await.unwrap().is_empty());
    }
}
