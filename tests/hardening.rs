//! Hardening: what an attacker or a careless operator tried against a fresh server
//! on loopback, each reproduced here (issue 12). Every test failed before its fix.

mod common;

use common::*;

/// Item 8: every response carries a strict CSP (nothing inline, nothing from
/// elsewhere, never framed), nosniff, no referrer; plain HTTP gets no HSTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let server = TestServer::start(44000, 44009).await;
    let client = reqwest::Client::new();
    for path in [
        "/",
        "/join/00000000-0000-0000-0000-000000000000",
        "/healthz",
        "/api/v1/hearings",
        "/api/v1/openapi.json",
    ] {
        let resp = client
            .get(format!("{}{path}", server.base()))
            .send()
            .await
            .expect("server answers");
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .expect("ascii");
        for directive in [
            "default-src 'self'",
            "connect-src 'self' wss:",
            "frame-ancestors 'none'",
            "script-src 'self'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(
            h.get("strict-transport-security").is_none(),
            "{path}: HSTS over plain HTTP"
        );
    }
    server.stop().await;
}
