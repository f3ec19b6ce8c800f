//! Tests of the admin API through its router (no sockets): every route, its errors,
//! the OpenAPI document against the router and the README. `state` and `KEY` are
//! shared with the command line's client tests.
//!
//! Each test starts from one [`Fixture`] (a fresh database, the state over it and the
//! router) and talks to the router through it, with the admin key unless it says
//! otherwise; [`expect_status`] and [`expect_error`] check an answer and hand back
//! its JSON, so a test reads as requests and what it expects of them.

use super::*;
use crate::model::{Admission, Role, SiteKind};
use crate::store::SqliteStore;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

pub(crate) const KEY: &str = "test-admin-key-0123456789";

/// The collection route: list and create hearings.
const HEARINGS: &str = "/api/v1/hearings";

/// The SQLite URL of `file` below `dir`.
fn sqlite_url(dir: &std::path::Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

pub(crate) async fn state(dir: &std::path::Path) -> AdminState {
    let url = sqlite_url(dir, "db/openhearing.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    AdminState {
        admin_key: Arc::new(AdminKey::new(store.clone(), Some(KEY))),
        key_guard: Default::default(),
        hearings: Hearings::new(
            Duration::from_secs(60),
            store.clone(),
            Arc::new(crate::permissions::Permissions::defaults()),
            None,
            true,
        ),
        store,
        tokens: Arc::new(JoinTokens::new(&[9u8; 32], Duration::from_secs(3600))),
        public_url: "https://court.example:8443".into(),
    }
}

/// An answer: its status and its JSON body (`null` when empty).
type Reply = (StatusCode, Value);

/// The admin API over a fresh database, for one test.
struct Fixture {
    /// Holds the database; removed when the test ends.
    dir: tempfile::TempDir,
    /// What the router runs on (its tokens verify the links it issues).
    st: AdminState,
    app: Router,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let app = routes::<AdminState>().with_state(st.clone());
        Fixture { dir, st, app }
    }

    /// The same API over `store` instead.
    fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.st.store = store;
        self.app = routes::<AdminState>().with_state(self.st.clone());
        self
    }

    /// `method uri` with `Authorization: Bearer <key>` if there is a key, and `body`
    /// as JSON if there is one.
    async fn call_as(
        &self,
        key: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, json)
    }

    /// `method uri` with the admin key and these raw body bytes, if any.
    async fn call(&self, method: &str, uri: &str, body: Option<Vec<u8>>) -> Reply {
        self.call_as(Some(KEY), method, uri, body).await
    }

    /// `method uri` with the admin key and `body` as JSON.
    async fn send(&self, method: &str, uri: &str, body: Value) -> Reply {
        self.call(method, uri, Some(bytes(&body))).await
    }

    /// `GET uri` with the admin key.
    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None).await
    }

    /// Creates the hearing of [`create_request`] and returns its links.
    async fn create_hearing(&self) -> HearingLinks {
        let created = expect_status(
            self.send("POST", HEARINGS, create_request()).await,
            StatusCode::CREATED,
        );
        serde_json::from_value(created).unwrap()
    }
}

/// Asserts the answer's status and returns its JSON.
fn expect_status((status, json): Reply, expected: StatusCode) -> Value {
    assert_eq!(status, expected, "{json}");
    json
}

/// Asserts the answer's status and error code and returns its JSON.
fn expect_error(reply: Reply, expected: StatusCode, code: &str) -> Value {
    let json = expect_status(reply, expected);
    assert_eq!(json["error"]["code"], code, "{json}");
    json
}

/// The error message of an answer (empty if it has none).
fn msg(j: &Value) -> &str {
    j["error"]["message"].as_str().unwrap_or_default()
}

/// The actions of an audit trail answer, in order.
fn actions(audit: &Value) -> Vec<&str> {
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A valid request to create a hearing: a judge and a defendant at two sites.
fn create_request() -> Value {
    json!({
        "case_number": "HS-123/2026",
        "title": "Vụ án trộm cắp tài sản",
        "participants": [
            {"name": "Nguyễn Văn A", "role": "presiding_judge", "site": "Phòng xử án 1"},
            {"name": "Trần Thị B", "role": "defendant", "site": "Trại tạm giam số 1"}
        ]
    })
}

/// Percent-encodes a path segment.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn auth_is_required() {
    let fx = Fixture::new().await;
    for (method, uri) in [
        ("GET", HEARINGS),
        ("POST", HEARINGS),
        ("GET", "/api/v1/hearings/not-a-uuid"),
        (
            "GET",
            "/api/v1/hearings/67e55044-10b1-426f-9247-bb680e5fe0c8/links",
        ),
    ] {
        for key in [None, Some("wrong-key")] {
            let (status, json) = fx.call_as(key, method, uri, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert_eq!(json["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn create_list_get_links() {
    let fx = Fixture::new().await;

    let created = fx.create_hearing().await;
    assert_eq!(created.case_number, "HS-123/2026");
    assert_eq!(created.participants.len(), 2);
    let p = &created.participants[1];
    assert_eq!(p.role, Role::Defendant);
    let prefix = format!(
        "https://court.example:8443/join/{}#token=",
        created.hearing_id
    );
    assert!(p.join_url.starts_with(&prefix), "{}", p.join_url);
    let claims = fx.st.tokens.verify(&p.join_url[prefix.len()..]).unwrap();
    assert_eq!(claims.sub, p.participant_id);
    assert_eq!(claims.hearing_id, created.hearing_id);
    assert_eq!(claims.site, "Trại tạm giam số 1");

    let (status, list) = fx.get(HEARINGS).await;
    assert_eq!(status, StatusCode::OK);
    let list: HearingList = serde_json::from_value(list).unwrap();
    assert_eq!(list.hearings.len(), 1);
    assert_eq!(list.hearings[0].id, created.hearing_id);

    let uri = format!("/api/v1/hearings/{}", created.hearing_id);
    let (status, got) = fx.get(&uri).await;
    assert_eq!(status, StatusCode::OK);
    let got: HearingDetail = serde_json::from_value(got).unwrap();
    let got = got.hearing;
    assert_eq!(got.participants[0].name, "Nguyễn Văn A");
    assert_eq!(
        got.participants[0].id,
        created.participants[0].participant_id
    );

    let (status, links) = fx.get(&format!("{uri}/links")).await;
    assert_eq!(status, StatusCode::OK);
    let links: HearingLinks = serde_json::from_value(links).unwrap();
    assert_eq!(links.hearing_id, created.hearing_id);
    assert_eq!(links.participants.len(), 2);
    assert!(links.participants[0].join_url.starts_with(&prefix));
}

#[tokio::test]
async fn error_statuses() {
    let fx = Fixture::new().await;
    let post = |body: Vec<u8>| fx.call("POST", HEARINGS, Some(body));

    expect_error(
        post(b"{not json".to_vec()).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );

    let mut body = create_request();
    body["participants"][1]["role"] = "king".into();
    let j = expect_error(
        post(bytes(&body)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        msg(&j).starts_with("participants[1].role: unknown role \"king\""),
        "{j}"
    );

    let mut body = create_request();
    body["participants"][0]["name"] = "  ".into();
    let j = expect_status(post(bytes(&body)).await, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(msg(&j), "participants[0].name: must not be empty");

    let j = expect_status(
        post(br#"{"case_number": "x", "title": "y"}"#.to_vec()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(msg(&j).contains("participants"), "{j}");

    let j = expect_status(
        post(br#"{"case_number": 5, "title": "y", "participants": []}"#.to_vec()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(msg(&j).starts_with("case_number:"), "{j}");

    let big = vec![b' '; MAX_BODY_BYTES + 10];
    expect_error(
        post(big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    let j = expect_status(
        fx.get("/api/v1/hearings/nope").await,
        StatusCode::BAD_REQUEST,
    );
    assert!(msg(&j).contains("`nope` is not a valid hearing id"), "{j}");

    let missing = Uuid::new_v4();
    for uri in [
        format!("/api/v1/hearings/{missing}"),
        format!("/api/v1/hearings/{missing}/links"),
    ] {
        expect_error(
            fx.get(&uri).await,
            StatusCode::NOT_FOUND,
            "hearing_not_found",
        );
    }
}

#[tokio::test]
async fn store_failure_is_500_with_generic_message() {
    let fx = Fixture::new().await;
    let store = SqliteStore::open(&sqlite_url(fx.dir.path(), "x.db"))
        .await
        .unwrap();
    store.close().await;
    let fx = fx.with_store(Arc::new(store));
    let j = expect_error(
        fx.get(HEARINGS).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    );
    assert!(!j["error"]["message"].as_str().unwrap().contains("closed"));
}

/// Every route of [`routes`]: (method, path). The OpenAPI document and the README
/// must list exactly these.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/hearings"),
    ("POST", "/api/v1/hearings"),
    ("GET", "/api/v1/hearings/{id}"),
    ("PATCH", "/api/v1/hearings/{id}"),
    ("POST", "/api/v1/hearings/{id}/state"),
    ("GET", "/api/v1/hearings/{id}/sites"),
    ("PUT", "/api/v1/hearings/{id}/sites/{name}"),
    ("POST", "/api/v1/hearings/{id}/participants"),
    ("GET", "/api/v1/hearings/{id}/participants/{pid}"),
    ("DELETE", "/api/v1/hearings/{id}/participants/{pid}"),
    ("POST", "/api/v1/hearings/{id}/participants/{pid}/revoke"),
    ("GET", "/api/v1/hearings/{id}/links"),
    ("GET", "/api/v1/hearings/{id}/audit"),
];

fn concrete(path: &str) -> String {
    path.replace("{id}", "67e55044-10b1-426f-9247-bb680e5fe0c8")
        .replace("{pid}", "67e55044-10b1-426f-9247-bb680e5fe0c9")
        .replace("{name}", "Ph%C3%B2ng%201")
}

#[tokio::test]
async fn every_route_needs_the_key_except_the_openapi_document() {
    let fx = Fixture::new().await;
    for (method, path) in ROUTES {
        // Each route's wrong keys come from a clean slate: guessing is throttled
        // after ten (see the next test), which is not what this one is about.
        fx.st.key_guard.forget_all();
        let uri = concrete(path);
        for key in [None, Some("wrong-key"), Some("")] {
            let (status, json) = fx.call_as(key, method, &uri, None).await;
            if *path == "/api/v1/openapi.json" {
                assert_eq!(status, StatusCode::OK, "the document is public");
                continue;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} {key:?}");
            assert_eq!(json["error"]["code"], "unauthorized");
        }
    }
    // Another scheme than Bearer is refused too.
    let req = Request::builder()
        .uri(HEARINGS)
        .header(header::AUTHORIZATION, format!("Basic {KEY}"))
        .body(Body::empty())
        .unwrap();
    let resp = fx.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn openapi_document_covers_every_route_and_the_readme_too() {
    let fx = Fixture::new().await;
    let (status, doc) = fx.call_as(None, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected, "OpenAPI paths differ from the routes");

    // Every listed route exists in the router (401, not 404/405), and no path
    // has methods the document does not name.
    for (method, path) in ROUTES {
        let (status, _) = fx.call_as(None, method, &concrete(path), None).await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::OK,
            "{method} {path} is routed: {status}"
        );
        for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if ROUTES.contains(&(other, path)) {
                continue;
            }
            let (status, _) = fx.call(other, &concrete(path), None).await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{other} {path} is not a route"
            );
        }
    }

    // Protected operations declare the bearer key; schemas are present.
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_key"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/api/v1/hearings"]["post"]["security"][0]
        .get("admin_key")
        .is_some());
    for schema in [
        "CreateHearingRequest",
        "HearingDetail",
        "StateRequest",
        "AuditTrail",
        "ErrorBody",
        "Role",
        "HearingState",
        "SiteKind",
        "Admission",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema}"
        );
    }
    let states = doc["components"]["schemas"]["HearingState"]["enum"].to_string();
    assert!(states.contains("in_session"), "{states}");

    let readme = include_str!("../../../README.md");
    for (method, path) in ROUTES {
        let row = format!("| `{method} {path}` |");
        assert!(readme.contains(&row), "README.md lacks the row {row}");
    }
}

#[tokio::test]
async fn sites_and_schedule_at_creation() {
    let fx = Fixture::new().await;
    let mut body = create_request();
    body["scheduled_at"] = "2026-12-01T08:00:00+07:00".into();
    body["sites"] = json!([{"name": "Phòng xử án 1", "kind": "central"}]);
    let created = expect_status(
        fx.send("POST", HEARINGS, body.clone()).await,
        StatusCode::CREATED,
    );
    let id = created["hearing_id"].as_str().unwrap().to_owned();
    let (s, got) = fx.get(&format!("/api/v1/hearings/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["scheduled_at"], "2026-12-01T01:00:00Z");
    assert_eq!(got["status"]["state"], "scheduled");
    assert_eq!(got["state_history"], json!([]));
    assert_eq!(
        got["sites"],
        json!([
            {"name": "Phòng xử án 1", "kind": "central"},
            {"name": "Trại tạm giam số 1", "kind": "remote"}
        ])
    );
    assert_eq!(got["participants"][0]["site_kind"], "central");
    assert_eq!(got["participants"][0]["admission"], "admitted");
    assert_eq!(got["participants"][1]["admission"], "lobby");
    assert_eq!(got["participants"][1]["muted"], false);
    assert_eq!(got["participants"][1]["link_version"], 0);

    // Each change of the body, and how the answer names the field it spoils.
    type Spoil = fn(&mut Value);
    let spoilers: [(Spoil, &str); 3] = [
        (
            |b| b["sites"][0]["kind"] = "castle".into(),
            "sites[0].kind:",
        ),
        (
            |b| b["scheduled_at"] = "next tuesday".into(),
            "scheduled_at:",
        ),
        (
            |b| {
                b["sites"] =
                    json!([{"name": "A", "kind": "central"}, {"name": "A", "kind": "office"}])
            },
            "sites[1].name:",
        ),
    ];
    for (spoil, prefix) in spoilers {
        let mut bad = body.clone();
        spoil(&mut bad);
        let j = expect_status(
            fx.send("POST", HEARINGS, bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(msg(&j).starts_with(prefix), "{j}");
    }
}

#[tokio::test]
async fn update_hearing_through_the_actor() {
    let fx = Fixture::new().await;
    let h = fx.create_hearing().await;
    let uri = format!("/api/v1/hearings/{}", h.hearing_id);

    let j = expect_status(
        fx.send(
            "PATCH",
            &uri,
            json!({"title": "  Phiên tòa phúc thẩm  ", "scheduled_at": "2026-12-02T09:30:00Z"}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(j["title"], "Phiên tòa phúc thẩm");
    assert_eq!(j["case_number"], "HS-123/2026", "absent fields stay");
    assert_eq!(j["scheduled_at"], "2026-12-02T09:30:00Z");
    let (_, got) = fx.get(&uri).await;
    assert_eq!(got["title"], "Phiên tòa phúc thẩm");

    for (body, status, needle) in [
        (
            b"{}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "body: nothing to change",
        ),
        (
            br#"{"title": " "}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title: must not be empty",
        ),
        (
            br#"{"colour": "red"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `colour`",
        ),
        (
            br#"{"scheduled_at": 5}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scheduled_at:",
        ),
        (
            br#"{"title": "x""#.to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            vec![b' '; MAX_BODY_BYTES + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
    ] {
        let j = expect_status(fx.call("PATCH", &uri, Some(body)).await, status);
        assert!(msg(&j).contains(needle), "{needle}: {j}");
    }
    let missing = format!("/api/v1/hearings/{}", Uuid::new_v4());
    expect_error(
        fx.send("PATCH", &missing, json!({"title": "t"})).await,
        StatusCode::NOT_FOUND,
        "hearing_not_found",
    );

    // Audited under the key's name.
    let (_, audit) = fx.get(&format!("{uri}/audit")).await;
    let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "hearing_updated");
    assert_eq!(last["actor"], "admin:config");
    assert_eq!(last["details"]["title"], "Phiên tòa phúc thẩm");
}

#[tokio::test]
async fn lifecycle_through_the_api() {
    let fx = Fixture::new().await;
    let h = fx.create_hearing().await;
    let uri = format!("/api/v1/hearings/{}/state", h.hearing_id);
    let set = |body: Value| fx.send("POST", &uri, body);
    const OK: StatusCode = StatusCode::OK;
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

    let j = expect_error(
        set(json!({"state": "in_session"})).await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
    assert!(msg(&j).contains("possible: open"), "{j}");

    let j = expect_status(set(json!({"state": "open"})).await, OK);
    assert_eq!(j["status"]["state"], "open");
    expect_status(set(json!({"state": "in_session"})).await, OK);

    let suspended = json!({"state": "suspended"});
    expect_error(set(suspended).await, INVALID, "reason_required");
    let too_long = json!({"state": "suspended", "reason": "x".repeat(501)});
    let j = expect_error(set(too_long).await, INVALID, "malformed_message");
    assert!(msg(&j).contains("reason"), "{j}");
    let suspended = json!({"state": "suspended", "reason": "Nghỉ giải lao"});
    let j = expect_status(set(suspended).await, OK);
    assert_eq!(j["status"]["reason"], "Nghỉ giải lao");

    let no_date = json!({"state": "adjourned", "reason": "Vắng bị cáo"});
    let j = expect_error(set(no_date).await, INVALID, "reason_required");
    assert!(msg(&j).contains("adjourned_to"), "{j}");
    let bad_date = json!({"state": "adjourned", "reason": "r", "adjourned_to": "soon"});
    let j = expect_error(set(bad_date).await, INVALID, "validation_failed");
    assert!(msg(&j).starts_with("adjourned_to:"), "{j}");
    let j = expect_status(set(json!({"state": "paused"})).await, INVALID);
    assert!(msg(&j).starts_with("state:"), "{j}");
    let j = expect_status(set(json!({"state": "open", "why": "x"})).await, INVALID);
    assert!(msg(&j).contains("unknown field `why`"), "{j}");

    expect_status(set(json!({"state": "in_session"})).await, OK);
    let j = expect_status(set(json!({"state": "closed"})).await, OK);
    assert_eq!(j["status"]["state"], "closed");
    let history: Vec<(String, String)> = j["state_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["state"].as_str().unwrap().to_owned(),
                r["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let states: Vec<&str> = history.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["open", "in_session", "suspended", "in_session", "closed"]
    );
    assert!(
        history.iter().all(|(_, a)| a == "admin:config"),
        "{history:?}"
    );
    assert_eq!(j["state_history"][2]["reason"], "Nghỉ giải lao");

    let j = expect_status(set(json!({"state": "open"})).await, StatusCode::CONFLICT);
    assert!(msg(&j).contains("cannot change any more"), "{j}");

    let missing = format!("/api/v1/hearings/{}/state", Uuid::new_v4());
    expect_status(
        fx.send("POST", &missing, json!({"state": "open"})).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn sites_route() {
    let fx = Fixture::new().await;
    let h = fx.create_hearing().await;
    let base = format!("/api/v1/hearings/{}", h.hearing_id);
    let put = |uri: String, kind: &str| {
        let (fx, body) = (&fx, json!({ "kind": kind }));
        async move { fx.send("PUT", &uri, body).await }
    };

    let (s, j) = fx.get(&format!("{base}/sites")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["sites"].as_array().unwrap().len(), 2);

    let detention = format!("{base}/sites/{}", enc("Trại tạm giam số 1"));
    let j = expect_status(put(detention, "detention").await, StatusCode::OK);
    assert_eq!(
        j,
        json!({"name": "Trại tạm giam số 1", "kind": "detention"})
    );
    let (_, got) = fx.get(&base).await;
    assert_eq!(got["participants"][1]["site_kind"], "detention");

    let office = format!("{base}/sites/{}", enc("Văn phòng luật sư"));
    expect_status(put(office.clone(), "office").await, StatusCode::CREATED);
    let (_, j) = fx.get(&format!("{base}/sites")).await;
    assert_eq!(j["sites"][2]["name"], "Văn phòng luật sư");

    let (s, j) = put(office, "palace").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(msg(&j).starts_with("kind:"), "{j}");
    let (s, j) = put(format!("{base}/sites/%20"), "office").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(msg(&j), "site.name: must not be empty");
    let missing = format!("/api/v1/hearings/{}/sites/x", Uuid::new_v4());
    let (s, _) = put(missing, "office").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, audit) = fx.get(&format!("{base}/audit")).await;
    assert_eq!(
        actions(&audit),
        ["hearing_created", "site_updated", "site_updated"]
    );
}

#[tokio::test]
async fn participants_add_get_revoke_remove() {
    let fx = Fixture::new().await;
    let h = fx.create_hearing().await;
    let base = format!("/api/v1/hearings/{}", h.hearing_id);
    let participants = format!("{base}/participants");
    let token = |link: &str| {
        let (_, jwt) = link.split_once("#token=").unwrap();
        fx.st.tokens.verify(jwt).unwrap()
    };

    let counsel =
        json!({"name": " Lê Thị C ", "role": "defence_counsel", "site": "Văn phòng luật sư"});
    let added = expect_status(
        fx.send("POST", &participants, counsel).await,
        StatusCode::CREATED,
    );
    let added: IssuedLink = serde_json::from_value(added).unwrap();
    assert_eq!(added.participant.name, "Lê Thị C");
    assert_eq!(added.participant.site_kind, SiteKind::Remote);
    assert_eq!(added.participant.admission, Admission::Lobby);
    let pid = added.participant.id;
    let claims = token(&added.join_url);
    assert_eq!((claims.sub, claims.ver), (pid, 0));

    for (body, needle) in [
        (
            json!({"name": "A", "role": "king", "site": "S"}),
            "role: unknown role \"king\"",
        ),
        (
            json!({"name": "", "role": "judge", "site": "S"}),
            "name: must not be empty",
        ),
        (
            json!({"name": "A", "role": "judge", "site": "S\u{7}"}),
            "site: must not contain control characters",
        ),
        (
            json!({"name": "A", "role": "judge"}),
            "missing field `site`",
        ),
    ] {
        let j = expect_status(
            fx.send("POST", &participants, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(msg(&j).contains(needle), "{needle}: {j}");
    }

    let p_uri = format!("{participants}/{pid}");
    let revoke = format!("{p_uri}/revoke");
    let (s, got) = fx.get(&p_uri).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["role"], "defence_counsel");

    let revoked = expect_status(fx.call("POST", &revoke, None).await, StatusCode::OK);
    let revoked: IssuedLink = serde_json::from_value(revoked).unwrap();
    assert_eq!(revoked.participant.link_version, 1);
    assert_eq!(token(&revoked.join_url).ver, 1);
    let (_, got) = fx.get(&p_uri).await;
    assert_eq!(got["link_version"], 1);

    let removed = expect_status(
        fx.call("DELETE", &format!("{p_uri}?reason=V%E1%BA%AFng"), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(removed["admission"], "removed");
    expect_error(
        fx.call("DELETE", &p_uri, None).await,
        StatusCode::CONFLICT,
        "not_applicable",
    );
    expect_status(fx.call("POST", &revoke, None).await, StatusCode::CONFLICT);
    expect_status(
        fx.call("DELETE", &format!("{p_uri}?colour=red"), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );

    // Links leave the removed participant out.
    let (_, links) = fx.get(&format!("{base}/links")).await;
    let ids: Vec<&str> = links["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["participant_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&pid.to_string().as_str()));

    let unknown = format!("{participants}/{}", Uuid::new_v4());
    for (method, uri) in [
        ("GET", unknown.clone()),
        ("DELETE", unknown.clone()),
        ("POST", format!("{unknown}/revoke")),
    ] {
        let (s, j) = fx.call(method, &uri, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(j["error"]["code"], "unknown_participant");
    }
    let j = expect_status(
        fx.get(&format!("{participants}/nope")).await,
        StatusCode::BAD_REQUEST,
    );
    assert!(msg(&j).contains("not a valid participant id"), "{j}");

    let (_, audit) = fx.get(&format!("{base}/audit")).await;
    assert_eq!(
        actions(&audit),
        [
            "hearing_created",
            "participant_added",
            "link_revoked",
            "remove"
        ]
    );
    assert_eq!(audit["entries"][3]["details"]["reason"], "Vắng");
    assert_eq!(audit["entries"][3]["subject"], format!("participant:{pid}"));

    // Nobody can be added to a closed hearing.
    for st in ["open", "closed"] {
        let (s, _) = fx
            .send("POST", &format!("{base}/state"), json!({ "state": st }))
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let witness = json!({"name": "A", "role": "witness", "site": "S"});
    expect_error(
        fx.send("POST", &participants, witness).await,
        StatusCode::CONFLICT,
        "hearing_closed",
    );
}

#[tokio::test]
async fn audit_route_verifies_the_chain_and_names_a_tampered_entry() {
    let fx = Fixture::new().await;
    let key = "ops-key-0123456789abcdef";
    fx.st
        .store
        .add_admin_key("ops", &crate::auth::admin_key_sha256(key))
        .await
        .unwrap();
    let h = fx.create_hearing().await;
    let base = format!("/api/v1/hearings/{}", h.hearing_id);
    let audit = format!("{base}/audit");
    // A key from the database works and is the audit actor.
    let open = bytes(&json!({"state": "open"}));
    let (s, _) = fx
        .call_as(Some(key), "POST", &format!("{base}/state"), Some(open))
        .await;
    assert_eq!(s, StatusCode::OK);

    let trail = expect_status(fx.get(&audit).await, StatusCode::OK);
    let trail: AuditTrail = serde_json::from_value(trail).unwrap();
    assert_eq!(trail.hearing_id, h.hearing_id);
    assert!(trail.verification.ok, "{:?}", trail.verification);
    assert_eq!(trail.entries.len(), 2);
    assert_eq!(trail.head.count, 2);
    assert_eq!(trail.head.hash, trail.entries[1].hash);
    assert_eq!(trail.entries[0].action, "hearing_created");
    assert_eq!(trail.entries[0].actor, "admin:config");
    assert_eq!(
        trail.entries[0].details["participants"][1]["role"],
        "defendant"
    );
    assert_eq!(trail.entries[1].action, "state_change");
    assert_eq!(trail.entries[1].actor, "admin:ops");
    assert_eq!(trail.entries[1].details["to"], "open");
    assert_eq!(trail.entries[1].prev_hash, trail.entries[0].hash);

    // Tamper with the first entry's details directly in the database.
    let url = sqlite_url(fx.dir.path(), "db/openhearing.db");
    let raw = crate::store::SqliteStore::open(&url).await.unwrap();
    sqlx::query("UPDATE audit SET details = 'not json' WHERE hearing_id = ? AND seq = 1")
        .bind(h.hearing_id.to_string())
        .execute(raw.pool())
        .await
        .unwrap();
    let (s, trail) = fx.get(&audit).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(trail["verification"]["ok"], false);
    assert!(
        trail["verification"]["problem"]
            .as_str()
            .unwrap()
            .starts_with("entry #1 was modified"),
        "{trail}"
    );
    assert_eq!(trail["entries"][0]["details"], "not json", "shown as text");

    let missing = format!("/api/v1/hearings/{}/audit", Uuid::new_v4());
    expect_error(
        fx.get(&missing).await,
        StatusCode::NOT_FOUND,
        "hearing_not_found",
    );
}

#[test]
fn every_operation_gets_the_shared_parts_of_the_document() {
    use utoipa::OpenApi;
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let shared = &doc["components"]["responses"]["Unauthorized"];
    assert_eq!(shared["description"], "Missing or wrong admin key");
    assert_eq!(
        shared["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert_eq!(op["tags"], json!(["hearings"]), "{method} {path}");
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let documented = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
                });
                assert!(documented, "{method} {path}: parameter {name}");
            }
            let needs_key = op["security"][0].get("admin_key").is_some();
            let unauthorized = &op["responses"]["401"];
            if needs_key {
                secured += 1;
                assert_eq!(
                    unauthorized["$ref"], "#/components/responses/Unauthorized",
                    "{method} {path}"
                );
                assert_eq!(
                    op["responses"]["429"]["$ref"], "#/components/responses/TooManyAttempts",
                    "{method} {path}"
                );
            } else {
                assert!(unauthorized.is_null(), "{method} {path} is public");
            }
        }
    }
    assert_eq!(secured, ROUTES.len() - 1, "all but the document itself");
}
