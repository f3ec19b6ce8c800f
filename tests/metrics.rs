//! `GET /metrics` (issue 15): the Prometheus text is scraped during a real hearing
//! and parsed; the values move as participants join, publish and leave, and the
//! endpoint needs the admin key. Participants by role and state move from the lobby
//! to admitted, media-health cells appear graded, the database calls are timed, the
//! recorder's queue is reported and a mute (a gap in the record) is counted.

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
            let (metric, value) = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => (s.metric, v),
                // A histogram by its count of observations (`name_count`).
                prometheus_parse::Value::Histogram(buckets) => (
                    format!("{}_count", s.metric),
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                ),
                other => panic!("{}: unexpected {other:?}", s.metric),
            };
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = if labels.is_empty() {
                metric
            } else {
                format!("{}{{{}}}", metric, labels.join(","))
            };
            (key, value)
        })
        .collect()
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// The sum of every series of `metric` whose labels include all of `with`.
fn total(m: &HashMap<String, f64>, metric: &str, with: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| {
            k.split_once('{').map_or(k.as_str(), |(n, _)| n) == metric
                && with.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Scrapes every 200 ms (at most 15 s) until `cond` holds; the last scrape.
async fn scrape_until(
    server: &TestServer,
    what: &str,
    cond: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let mut last = scrape(server).await;
    for _ in 0..75 {
        if cond(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        last = scrape(server).await;
    }
    panic!("timed out waiting for {what}: {last:?}");
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
    // Before the court lets them in: the judge admitted, the others in the lobby.
    let waiting = scrape_until(&server, "participants by role and state", |m| {
        value(m, "openhearing_participants{role=defendant,state=lobby}") == 1.0
            && value(m, "openhearing_participants{role=observer,state=lobby}") == 1.0
    })
    .await;
    assert_eq!(
        value(
            &waiting,
            "openhearing_participants{role=presiding_judge,state=admitted}"
        ),
        1.0,
        "{waiting:?}"
    );
    convene(&judge, &[&defendant, &observer]).await;
    publish(&[&judge, &defendant]).await;
    wait_exchange(
        &[&judge, &defendant, &observer],
        &[&judge, &defendant],
        10,
        20,
    )
    .await;

    // Media health: the cells of who sees and hears whom are graded once sampled
    // (of what the publishers say they send).
    for p in [&judge, &defendant] {
        send(
            p,
            openhearing_signaling::ClientMessage::MediaState {
                audio: true,
                video: true,
            },
        );
    }
    let during = scrape_until(&server, "graded media-health cells", |m| {
        total(m, "openhearing_media_health_cells", &["state=ok"]) >= 1.0
    })
    .await;
    for role in ["presiding_judge", "defendant", "observer"] {
        let key = format!("openhearing_sessions{{role={role}}}");
        assert_eq!(value(&during, &key), 1.0, "{key}: {during:?}");
        let key = format!("openhearing_participants{{role={role},state=admitted}}");
        assert_eq!(value(&during, &key), 1.0, "{key}: {during:?}");
        let key = format!("openhearing_participants{{role={role},state=lobby}}");
        assert_eq!(value(&during, &key), 0.0, "{key}: {during:?}");
    }
    // Two publishers, each to the two others, audio and video: at most 8 cells.
    let cells = total(&during, "openhearing_media_health_cells", &[]);
    assert!((1.0..=8.0).contains(&cells), "{cells} cells: {during:?}");
    assert!(total(&during, "openhearing_media_health_cells", &["kind=video"]) >= 1.0);
    // Every database call is timed; none failed.
    assert!(
        value(&during, "openhearing_store_seconds_count{op=apply}") >= 1.0,
        "the hearing's batches are timed: {during:?}"
    );
    assert!(value(&during, "openhearing_store_seconds_count{op=get_hearing}") >= 1.0);
    assert_eq!(total(&during, "openhearing_store_errors_total", &[]), 0.0);
    // In session the hearing records: its queue is reported (empty or nearly).
    assert!(
        during.contains_key("openhearing_recorder_queue_packets"),
        "{during:?}"
    );
    assert_eq!(value(&during, "openhearing_hearings_live"), 1.0);
    assert!(value(&during, "openhearing_media_ports_in_use") >= 3.0);
    // Two publishers, each audio and video, to the two others: 8 legs.
    assert_eq!(value(&during, "openhearing_sfu_legs"), 8.0, "{during:?}");
    let forwarded = value(&during, "openhearing_rtp_packets_forwarded_total");
    assert!(forwarded > value(&before, "openhearing_rtp_packets_forwarded_total"));
    assert!(value(&during, "openhearing_rtp_bytes_forwarded_total") > forwarded);

    // The court mutes the defendant and the defendant accepts the unmute: the time
    // muted is a gap in the record, counted by its cause.
    let gaps_before = value(&during, "openhearing_recorder_gaps_total{cause=muted}");
    send(
        &judge,
        openhearing_signaling::ClientMessage::Mute {
            participant_id: defendant.id(),
        },
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    send(
        &judge,
        openhearing_signaling::ClientMessage::RequestUnmute {
            participant_id: defendant.id(),
        },
    );
    wait_event(&defendant, "the unmute request", |m| {
        matches!(
            m,
            openhearing_signaling::ServerMessage::UnmuteRequested { .. }
        )
    })
    .await;
    send(
        &defendant,
        openhearing_signaling::ClientMessage::AcceptUnmute,
    );
    scrape_until(&server, "the mute counted as a gap", |m| {
        value(m, "openhearing_recorder_gaps_total{cause=muted}") > gaps_before
    })
    .await;

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
    // Every series the asserts below read: the three leaves reach the hearing one
    // after another, and the gauges follow each.
    let gone = |m: &HashMap<String, f64>| {
        value(m, "openhearing_sfu_legs") == 0.0
            && ["presiding_judge", "defendant", "observer"]
                .iter()
                .all(|role| {
                    value(m, &format!("openhearing_sessions{{role={role}}}")) == 0.0
                        && value(
                            m,
                            &format!("openhearing_participants{{role={role},state=admitted}}"),
                        ) == 0.0
                })
    };
    let mut after = scrape(&server).await;
    for _ in 0..100 {
        if gone(&after) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = scrape(&server).await;
    }
    assert_eq!(value(&after, "openhearing_sfu_legs"), 0.0, "{after:?}");
    for role in ["presiding_judge", "defendant", "observer"] {
        let key = format!("openhearing_sessions{{role={role}}}");
        assert_eq!(value(&after, &key), 0.0, "{key} after everyone left");
        let key = format!("openhearing_participants{{role={role},state=admitted}}");
        assert_eq!(value(&after, &key), 0.0, "{key} after everyone left");
    }
    assert!(value(&after, "openhearing_admin_key_failures_total") >= 1.0);
    server.stop().await;
}

/// The example Grafana dashboard uses only series the server exports, and shows the
/// issue's: media health, participants by role and state, the recorder, the database.
#[test]
fn the_grafana_dashboard_uses_the_exported_series() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana-openhearing.json"
    ))
    .expect("the dashboard is readable");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut used = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("openhearing_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|b| openhearing::metrics::ALL.contains(b))
                    .unwrap_or(&name)
                    .to_owned();
                used.insert(base);
            }
        }
    }
    for name in &used {
        assert!(
            openhearing::metrics::ALL.contains(&name.as_str()),
            "the dashboard uses {name}, which the server does not export"
        );
    }
    for wanted in [
        openhearing::metrics::HEALTH_CELLS,
        openhearing::metrics::PARTICIPANTS,
        openhearing::metrics::RECORDER_QUEUE,
        openhearing::metrics::RECORDER_GAPS,
        openhearing::metrics::STORE_SECONDS,
        openhearing::metrics::STORE_ERRORS,
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}
