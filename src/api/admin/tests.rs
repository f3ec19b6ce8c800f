//! Tests of the admin API through its router (no sockets): every route, its errors,
//! the OpenAPI document against the router and the README. `state` and `KEY` are
//! shared with the command line's client tests.

use super::*;
use crate::model::{Admission, Role, SiteKind};
use crate::store::SqliteStore;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

pub(crate) const KEY: &str = "test-admin-key-0123456789";

pub(crate) async fn state(dir: &std::path::Path) -> AdminState {
    let url = format!("sqlite://{}", dir.join("db/openhearing.db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    AdminState {
        admin_key: Arc::new(AdminKey::new(store.clone(), Some(KEY))),
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

fn app(state: AdminState) -> Router {
    routes::<AdminState>().with_state(state)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, serde_json::Value) {
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
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, json)
}

fn create_body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "case_number": "HS-123/2026",
        "title": "Vụ án trộm cắp tài sản",
        "participants": [
            {"name": "Nguyễn Văn A", "role": "presiding_judge", "site": "Phòng xử án 1"},
            {"name": "Trần Thị B", "role": "defendant", "site": "Trại tạm giam số 1"}
        ]
    }))
    .unwrap()
}

#[tokio::test]
async fn auth_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    for (method, uri) in [
        ("GET", "/api/v1/hearings"),
        ("POST", "/api/v1/hearings"),
        ("GET", "/api/v1/hearings/not-a-uuid"),
        (
            "GET",
            "/api/v1/hearings/67e55044-10b1-426f-9247-bb680e5fe0c8/links",
        ),
    ] {
        for key in [None, Some("wrong-key")] {
            let (status, json) = call(&app, method, uri, key, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert_eq!(json["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn create_list_get_links() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path()).await;
    let tokens = st.tokens.clone();
    let app = app(st);

    let (status, created) = call(
        &app,
        "POST",
        "/api/v1/hearings",
        Some(KEY),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created: HearingLinks = serde_json::from_value(created).unwrap();
    assert_eq!(created.case_number, "HS-123/2026");
    assert_eq!(created.participants.len(), 2);
    let p = &created.participants[1];
    assert_eq!(p.role, Role::Defendant);
    let prefix = format!(
        "https://court.example:8443/join/{}#token=",
        created.hearing_id
    );
    assert!(p.join_url.starts_with(&prefix), "{}", p.join_url);
    let claims = tokens.verify(&p.join_url[prefix.len()..]).unwrap();
    assert_eq!(claims.sub, p.participant_id);
    assert_eq!(claims.hearing_id, created.hearing_id);
    assert_eq!(claims.site, "Trại tạm giam số 1");

    let (status, list) = call(&app, "GET", "/api/v1/hearings", Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let list: HearingList = serde_json::from_value(list).unwrap();
    assert_eq!(list.hearings.len(), 1);
    assert_eq!(list.hearings[0].id, created.hearing_id);

    let uri = format!("/api/v1/hearings/{}", created.hearing_id);
    let (status, got) = call(&app, "GET", &uri, Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let got: HearingDetail = serde_json::from_value(got).unwrap();
    let got = got.hearing;
    assert_eq!(got.participants[0].name, "Nguyễn Văn A");
    assert_eq!(
        got.participants[0].id,
        created.participants[0].participant_id
    );

    let (status, links) = call(&app, "GET", &format!("{uri}/links"), Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let links: HearingLinks = serde_json::from_value(links).unwrap();
    assert_eq!(links.hearing_id, created.hearing_id);
    assert_eq!(links.participants.len(), 2);
    assert!(links.participants[0].join_url.starts_with(&prefix));
}

#[tokio::test]
async fn error_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    let post = |body: Vec<u8>| {
        let app = app.clone();
        async move { call(&app, "POST", "/api/v1/hearings", Some(KEY), Some(body)).await }
    };

    let (s, j) = post(b"{not json".to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    assert_eq!(j["error"]["code"], "malformed_json");

    let mut body: serde_json::Value = serde_json::from_slice(&create_body()).unwrap();
    body["participants"][1]["role"] = "king".into();
    let (s, j) = post(serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(j["error"]["code"], "validation_failed");
    let msg = j["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("participants[1].role: unknown role \"king\""),
        "{msg}"
    );

    let mut body: serde_json::Value = serde_json::from_slice(&create_body()).unwrap();
    body["participants"][0]["name"] = "  ".into();
    let (s, j) = post(serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        j["error"]["message"],
        "participants[0].name: must not be empty"
    );

    let (s, j) = post(br#"{"case_number": "x", "title": "y"}"#.to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("participants"),
        "{j}"
    );

    let (s, j) = post(br#"{"case_number": 5, "title": "y", "participants": []}"#.to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("case_number:"),
        "{j}"
    );

    let big = vec![b' '; MAX_BODY_BYTES + 10];
    let (s, j) = post(big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(j["error"]["code"], "payload_too_large");

    let (s, j) = call(&app, "GET", "/api/v1/hearings/nope", Some(KEY), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`nope` is not a valid hearing id"));

    let missing = Uuid::new_v4();
    for uri in [
        format!("/api/v1/hearings/{missing}"),
        format!("/api/v1/hearings/{missing}/links"),
    ] {
        let (s, j) = call(&app, "GET", &uri, Some(KEY), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(j["error"]["code"], "hearing_not_found");
    }
}

#[tokio::test]
async fn store_failure_is_500_with_generic_message() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.close().await;
    let mut st = state(dir.path()).await;
    st.store = Arc::new(store);
    let app = app(st);
    let (s, j) = call(&app, "GET", "/api/v1/hearings", Some(KEY), None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(j["error"]["code"], "internal");
    assert!(!j["error"]["message"].as_str().unwrap().contains("closed"));
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

fn json(v: serde_json::Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&v).unwrap())
}

fn msg(j: &serde_json::Value) -> &str {
    j["error"]["message"].as_str().unwrap_or_default()
}

async fn create(app: &Router) -> HearingLinks {
    let (status, created) = call(
        app,
        "POST",
        "/api/v1/hearings",
        Some(KEY),
        Some(create_body()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    serde_json::from_value(created).unwrap()
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
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    for (method, path) in ROUTES {
        let uri = concrete(path);
        for key in [None, Some("wrong-key"), Some("")] {
            let (status, json) = call(&app, method, &uri, key, None).await;
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
        .uri("/api/v1/hearings")
        .header(header::AUTHORIZATION, format!("Basic {KEY}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn openapi_document_covers_every_route_and_the_readme_too() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    let (status, doc) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
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
        let (status, _) = call(&app, method, &concrete(path), None, None).await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::OK,
            "{method} {path} is routed: {status}"
        );
        for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if ROUTES.contains(&(other, path)) {
                continue;
            }
            let (status, _) = call(&app, other, &concrete(path), Some(KEY), None).await;
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
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    let mut body: serde_json::Value = serde_json::from_slice(&create_body()).unwrap();
    body["scheduled_at"] = "2026-12-01T08:00:00+07:00".into();
    body["sites"] = serde_json::json!([{"name": "Phòng xử án 1", "kind": "central"}]);
    let (s, created) = call(
        &app,
        "POST",
        "/api/v1/hearings",
        Some(KEY),
        json(body.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["hearing_id"].as_str().unwrap().to_owned();
    let (s, got) = call(
        &app,
        "GET",
        &format!("/api/v1/hearings/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["scheduled_at"], "2026-12-01T01:00:00Z");
    assert_eq!(got["status"]["state"], "scheduled");
    assert_eq!(got["state_history"], serde_json::json!([]));
    assert_eq!(
        got["sites"],
        serde_json::json!([
            {"name": "Phòng xử án 1", "kind": "central"},
            {"name": "Trại tạm giam số 1", "kind": "remote"}
        ])
    );
    assert_eq!(got["participants"][0]["site_kind"], "central");
    assert_eq!(got["participants"][0]["admission"], "admitted");
    assert_eq!(got["participants"][1]["admission"], "lobby");
    assert_eq!(got["participants"][1]["muted"], false);
    assert_eq!(got["participants"][1]["link_version"], 0);

    let mut bad = body.clone();
    bad["sites"][0]["kind"] = "castle".into();
    let (s, j) = call(&app, "POST", "/api/v1/hearings", Some(KEY), json(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(msg(&j).starts_with("sites[0].kind:"), "{j}");
    let mut bad = body.clone();
    bad["scheduled_at"] = "next tuesday".into();
    let (s, j) = call(&app, "POST", "/api/v1/hearings", Some(KEY), json(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(msg(&j).starts_with("scheduled_at:"), "{j}");
    let mut bad = body;
    bad["sites"] =
        serde_json::json!([{"name": "A", "kind": "central"}, {"name": "A", "kind": "office"}]);
    let (s, j) = call(&app, "POST", "/api/v1/hearings", Some(KEY), json(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(msg(&j).starts_with("sites[1].name:"), "{j}");
}

#[tokio::test]
async fn update_hearing_through_the_actor() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    let h = create(&app).await;
    let uri = format!("/api/v1/hearings/{}", h.hearing_id);

    let (s, j) = call(
        &app,
        "PATCH",
        &uri,
        Some(KEY),
        json(serde_json::json!({"title": "  Phiên tòa phúc thẩm  ", "scheduled_at": "2026-12-02T09:30:00Z"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["title"], "Phiên tòa phúc thẩm");
    assert_eq!(j["case_number"], "HS-123/2026", "absent fields stay");
    assert_eq!(j["scheduled_at"], "2026-12-02T09:30:00Z");
    let (_, got) = call(&app, "GET", &uri, Some(KEY), None).await;
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
        let (s, j) = call(&app, "PATCH", &uri, Some(KEY), Some(body)).await;
        assert_eq!(s, status, "{j}");
        assert!(msg(&j).contains(needle), "{needle}: {j}");
    }
    let missing = format!("/api/v1/hearings/{}", Uuid::new_v4());
    let (s, j) = call(
        &app,
        "PATCH",
        &missing,
        Some(KEY),
        json(serde_json::json!({"title": "t"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{j}");
    assert_eq!(j["error"]["code"], "hearing_not_found");

    // Audited under the key's name.
    let (_, audit) = call(&app, "GET", &format!("{uri}/audit"), Some(KEY), None).await;
    let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "hearing_updated");
    assert_eq!(last["actor"], "admin:config");
    assert_eq!(last["details"]["title"], "Phiên tòa phúc thẩm");
}

#[tokio::test]
async fn lifecycle_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    let h = create(&app).await;
    let uri = format!("/api/v1/hearings/{}/state", h.hearing_id);
    let set = |body: serde_json::Value| {
        let app = app.clone();
        let uri = uri.clone();
        async move { call(&app, "POST", &uri, Some(KEY), json(body)).await }
    };

    let (s, j) = set(serde_json::json!({"state": "in_session"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert_eq!(j["error"]["code"], "invalid_transition");
    assert!(msg(&j).contains("possible: open"), "{j}");

    let (s, j) = set(serde_json::json!({"state": "open"})).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["status"]["state"], "open");
    let (s, j) = set(serde_json::json!({"state": "in_session"})).await;
    assert_eq!(s, StatusCode::OK, "{j}");

    let (s, j) = set(serde_json::json!({"state": "suspended"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
    assert_eq!(j["error"]["code"], "reason_required");
    let (s, j) = set(serde_json::json!({"state": "suspended", "reason": "x".repeat(501)})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
    assert_eq!(j["error"]["code"], "malformed_message");
    assert!(msg(&j).contains("reason"), "{j}");
    let (s, j) = set(serde_json::json!({"state": "suspended", "reason": "Nghỉ giải lao"})).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["status"]["reason"], "Nghỉ giải lao");

    let (s, j) = set(serde_json::json!({"state": "adjourned", "reason": "Vắng bị cáo"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
    assert_eq!(j["error"]["code"], "reason_required");
    assert!(msg(&j).contains("adjourned_to"), "{j}");
    let (s, j) =
        set(serde_json::json!({"state": "adjourned", "reason": "r", "adjourned_to": "soon"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
    assert_eq!(j["error"]["code"], "validation_failed");
    assert!(msg(&j).starts_with("adjourned_to:"), "{j}");
    let (s, j) = set(serde_json::json!({"state": "paused"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
    assert!(msg(&j).starts_with("state:"), "{j}");
    let (s, j) = set(serde_json::json!({"state": "open", "why": "x"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
    assert!(msg(&j).contains("unknown field `why`"), "{j}");

    let (s, j) = set(serde_json::json!({"state": "in_session"})).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let (s, j) = set(serde_json::json!({"state": "closed"})).await;
    assert_eq!(s, StatusCode::OK, "{j}");
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

    let (s, j) = set(serde_json::json!({"state": "open"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert!(msg(&j).contains("cannot change any more"), "{j}");

    let missing = format!("/api/v1/hearings/{}/state", Uuid::new_v4());
    let (s, _) = call(
        &app,
        "POST",
        &missing,
        Some(KEY),
        json(serde_json::json!({"state": "open"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sites_route() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()).await);
    let h = create(&app).await;
    let base = format!("/api/v1/hearings/{}", h.hearing_id);

    let (s, j) = call(&app, "GET", &format!("{base}/sites"), Some(KEY), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["sites"].as_array().unwrap().len(), 2);

    let detention = format!("{base}/sites/{}", enc("Trại tạm giam số 1"));
    let (s, j) = call(
        &app,
        "PUT",
        &detention,
        Some(KEY),
        json(serde_json::json!({"kind": "detention"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(
        j,
        serde_json::json!({"name": "Trại tạm giam số 1", "kind": "detention"})
    );
    let (_, got) = call(&app, "GET", &base, Some(KEY), None).await;
    assert_eq!(got["participants"][1]["site_kind"], "detention");

    let office = format!("{base}/sites/{}", enc("Văn phòng luật sư"));
    let (s, j) = call(
        &app,
        "PUT",
        &office,
        Some(KEY),
        json(serde_json::json!({"kind": "office"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let (_, j) = call(&app, "GET", &format!("{base}/sites"), Some(KEY), None).await;
    assert_eq!(j["sites"][2]["name"], "Văn phòng luật sư");

    let (s, j) = call(
        &app,
        "PUT",
        &office,
        Some(KEY),
        json(serde_json::json!({"kind": "palace"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(msg(&j).starts_with("kind:"), "{j}");
    let blank = format!("{base}/sites/%20");
    let (s, j) = call(
        &app,
        "PUT",
        &blank,
        Some(KEY),
        json(serde_json::json!({"kind": "office"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(msg(&j), "site.name: must not be empty");
    let missing = format!("/api/v1/hearings/{}/sites/x", Uuid::new_v4());
    let (s, _) = call(
        &app,
        "PUT",
        &missing,
        Some(KEY),
        json(serde_json::json!({"kind": "office"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["hearing_created", "site_updated", "site_updated"]);
}

#[tokio::test]
async fn participants_add_get_revoke_remove() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path()).await;
    let tokens = st.tokens.clone();
    let app = app(st);
    let h = create(&app).await;
    let base = format!("/api/v1/hearings/{}", h.hearing_id);

    let (s, added) = call(
        &app,
        "POST",
        &format!("{base}/participants"),
        Some(KEY),
        json(serde_json::json!({"name": " Lê Thị C ", "role": "defence_counsel", "site": "Văn phòng luật sư"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    let added: IssuedLink = serde_json::from_value(added).unwrap();
    assert_eq!(added.participant.name, "Lê Thị C");
    assert_eq!(added.participant.site_kind, SiteKind::Remote);
    assert_eq!(added.participant.admission, Admission::Lobby);
    let pid = added.participant.id;
    let claims = tokens
        .verify(added.join_url.split_once("#token=").unwrap().1)
        .unwrap();
    assert_eq!((claims.sub, claims.ver), (pid, 0));

    for (body, needle) in [
        (
            serde_json::json!({"name": "A", "role": "king", "site": "S"}),
            "role: unknown role \"king\"",
        ),
        (
            serde_json::json!({"name": "", "role": "judge", "site": "S"}),
            "name: must not be empty",
        ),
        (
            serde_json::json!({"name": "A", "role": "judge", "site": "S\u{7}"}),
            "site: must not contain control characters",
        ),
        (
            serde_json::json!({"name": "A", "role": "judge"}),
            "missing field `site`",
        ),
    ] {
        let (s, j) = call(
            &app,
            "POST",
            &format!("{base}/participants"),
            Some(KEY),
            json(body),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert!(msg(&j).contains(needle), "{needle}: {j}");
    }

    let p_uri = format!("{base}/participants/{pid}");
    let (s, got) = call(&app, "GET", &p_uri, Some(KEY), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["role"], "defence_counsel");

    let (s, revoked) = call(&app, "POST", &format!("{p_uri}/revoke"), Some(KEY), None).await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    let revoked: IssuedLink = serde_json::from_value(revoked).unwrap();
    assert_eq!(revoked.participant.link_version, 1);
    let claims = tokens
        .verify(revoked.join_url.split_once("#token=").unwrap().1)
        .unwrap();
    assert_eq!(claims.ver, 1);
    let (_, got) = call(&app, "GET", &p_uri, Some(KEY), None).await;
    assert_eq!(got["link_version"], 1);

    let (s, removed) = call(
        &app,
        "DELETE",
        &format!("{p_uri}?reason=V%E1%BA%AFng"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{removed}");
    assert_eq!(removed["admission"], "removed");
    let (s, j) = call(&app, "DELETE", &p_uri, Some(KEY), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert_eq!(j["error"]["code"], "not_applicable");
    let (s, j) = call(&app, "POST", &format!("{p_uri}/revoke"), Some(KEY), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    let (s, j) = call(
        &app,
        "DELETE",
        &format!("{p_uri}?colour=red"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");

    // Links leave the removed participant out.
    let (_, links) = call(&app, "GET", &format!("{base}/links"), Some(KEY), None).await;
    let ids: Vec<&str> = links["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["participant_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&pid.to_string().as_str()));

    let unknown = format!("{base}/participants/{}", Uuid::new_v4());
    for (method, uri) in [
        ("GET", unknown.clone()),
        ("DELETE", unknown.clone()),
        ("POST", format!("{unknown}/revoke")),
    ] {
        let (s, j) = call(&app, method, &uri, Some(KEY), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(j["error"]["code"], "unknown_participant");
    }
    let (s, j) = call(
        &app,
        "GET",
        &format!("{base}/participants/nope"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(msg(&j).contains("not a valid participant id"), "{j}");

    let (_, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
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
        let (s, _) = call(
            &app,
            "POST",
            &format!("{base}/state"),
            Some(KEY),
            json(serde_json::json!({"state": st})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, j) = call(
        &app,
        "POST",
        &format!("{base}/participants"),
        Some(KEY),
        json(serde_json::json!({"name": "A", "role": "witness", "site": "S"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert_eq!(j["error"]["code"], "hearing_closed");
}

#[tokio::test]
async fn audit_route_verifies_the_chain_and_names_a_tampered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path()).await;
    let key = "ops-key-0123456789abcdef";
    st.store
        .add_admin_key("ops", &crate::auth::admin_key_sha256(key))
        .await
        .unwrap();
    let app = app(st);
    let h = create(&app).await;
    let base = format!("/api/v1/hearings/{}", h.hearing_id);
    // A key from the database works and is the audit actor.
    let (s, _) = call(
        &app,
        "POST",
        &format!("{base}/state"),
        Some(key),
        json(serde_json::json!({"state": "open"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let (s, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let trail: AuditTrail = serde_json::from_value(audit).unwrap();
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
    let url = format!(
        "sqlite://{}",
        dir.path().join("db/openhearing.db").display()
    );
    let raw = crate::store::SqliteStore::open(&url).await.unwrap();
    sqlx::query("UPDATE audit SET details = 'not json' WHERE hearing_id = ? AND seq = 1")
        .bind(h.hearing_id.to_string())
        .execute(raw.pool())
        .await
        .unwrap();
    let (s, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(audit["verification"]["ok"], false);
    assert!(
        audit["verification"]["problem"]
            .as_str()
            .unwrap()
            .starts_with("entry #1 was modified"),
        "{audit}"
    );
    assert_eq!(audit["entries"][0]["details"], "not json", "shown as text");

    let missing = format!("/api/v1/hearings/{}/audit", Uuid::new_v4());
    let (s, j) = call(&app, "GET", &missing, Some(KEY), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(j["error"]["code"], "hearing_not_found");
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
            assert_eq!(
                op["tags"],
                serde_json::json!(["hearings"]),
                "{method} {path}"
            );
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
            } else {
                assert!(unauthorized.is_null(), "{method} {path} is public");
            }
        }
    }
    assert_eq!(secured, ROUTES.len() - 1, "all but the document itself");
}
