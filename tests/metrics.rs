//! `GET /metrics` (issue 15): the Prometheus text is scraped during a real hearing
//! and parsed; the values move as participants join, publish and leave, and the
//! endpoint needs the admin key.

mod common;

use std::collections::HashMap;

use common::cast::*;
use common::*;

/// Every sample of the scrape, by metric name and labels (`name{k=v,...}`).
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", server.base()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("server answers");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = resp.text().await.expect("text");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    assert!(!parsed.docs.is_empty(), "metrics are described:\n{text}");
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("{}: unexpected {other:?}", s.metric),
            };
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = if labels.is_empty() {
                s.metric
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            (key, value)
        })
        .collect()
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_a_real_hearing_and_need_the_key() {
    let server = TestServer::start(44110, 44139).await;
    let anonymous = reqwest::get(format!("{}/metrics", server.base()))
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 401, "metrics need the admin key");

    let before = scrape(&server).await;
    assert!(value(&before, "openhearing_process_resident_memory_bytes") > 1e6);
    assert!(value(&before, "openhearing_process_open_fds") >= 3.0);

    let hearing = server.hearing_of(&[JUDGE, DEFENDANT, OBSERVER]).await;
    let judge = join(&server, &hearing, "presiding_judge", true).await;
    let defendant = join(&server, &hearing, "defendant", true).await;
    let observer = join(&server, &hearing, "observer", false).await;
    convene(&judge, &[&defendant, &observer]).await;
    publish(&[&judge, &defendant]).await;
    wait_exchange(
        &[&judge, &defendant, &observer],
        &[&judge, &defendant],
        10,
        20,
    )
    .await;

    let during = scrape(&server).await;
    for role in ["presiding_judge", "defendant", "observer"] {
        let key = format!("openhearing_sessions{{role={role}}}");
        assert_eq!(value(&during, &key), 1.0, "{key}: {during:?}");
    }
    assert_eq!(value(&during, "openhearing_hearings_live"), 1.0);
    assert!(value(&during, "openhearing_media_ports_in_use") >= 3.0);
    // Two publishers, each audio and video, to the two others: 8 legs.
    assert_eq!(value(&during, "openhearing_sfu_legs"), 8.0, "{during:?}");
    let forwarded = value(&during, "openhearing_rtp_packets_forwarded_total");
    assert!(forwarded > value(&before, "openhearing_rtp_packets_forwarded_total"));
    assert!(value(&during, "openhearing_rtp_bytes_forwarded_total") > forwarded);

    let wrong = reqwest::Client::new()
        .get(format!("{}/metrics", server.base()))
        .bearer_auth("ohk_not_the_key_not_the_key_not_the_key_xxxxxxxxx")
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), 401);

    for p in [&judge, &defendant, &observer] {
        let _ = p.leave().await;
    }
    let mut after = scrape(&server).await;
    for _ in 0..100 {
        if value(&after, "openhearing_sfu_legs") == 0.0
            && value(&after, "openhearing_sessions{role=defendant}") == 0.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = scrape(&server).await;
    }
    assert_eq!(value(&after, "openhearing_sfu_legs"), 0.0, "{after:?}");
    for role in ["presiding_judge", "defendant", "observer"] {
        let key = format!("openhearing_sessions{{role={role}}}");
        assert_eq!(value(&after, &key), 0.0, "{key} after everyone left");
    }
    assert!(value(&after, "openhearing_admin_key_failures_total") >= 1.0);
    server.stop().await;
}
