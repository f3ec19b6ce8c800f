//! `signaling/PROTOCOL.md` is the contract client authors read; this keeps its lists
//! of client and server messages in step with `signaling/src/protocol/`. The
//! authoritative variant lists come from serde itself: an unknown `type` tag is answered with "unknown
//! variant `…`, expected one of `a`, `b`, …", which names every message the derive
//! knows, so a message added to the enum without a section in PROTOCOL.md (or a
//! section left behind for a removed one) fails here.

use openhearing_signaling::{ClientMessage, ServerMessage};

fn protocol_md() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/signaling/PROTOCOL.md"
    ))
    .expect("signaling/PROTOCOL.md is readable")
}

/// The `type` tags serde accepts for `T`, in declaration order.
fn serde_tags<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    let err = serde_json::from_str::<T>(r#"{"type":"__no_such_message__"}"#)
        .expect_err("an unknown type tag is refused")
        .to_string();
    let list = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("serde names the variants: {err}"))
        .1;
    // serde_json appends the position: "... `last` at line 1 column 29".
    let list = list.rsplit_once(" at line ").map_or(list, |(l, _)| l);
    list.split(", ")
        .map(|t| t.trim().trim_matches('`').to_owned())
        .collect()
}

/// The text of `## N. <title>` up to the next `## ` heading.
fn section<'a>(md: &'a str, title: &str) -> &'a str {
    let start = md
        .lines()
        .position(|l| l.starts_with("## ") && l.ends_with(title))
        .unwrap_or_else(|| panic!("PROTOCOL.md has a section ending in {title:?}"));
    let lines: Vec<&str> = md.lines().collect();
    let begin: usize = lines[..=start].iter().map(|l| l.len() + 1).sum();
    let rest = &md[begin..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    &rest[..end]
}

/// Message names documented in a section: `### `name`` headings, plus table rows of
/// the form `| `{"type":"name",...}` |` (the court actions table).
fn documented(section: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in section.lines() {
        if let Some(h) = line.strip_prefix("### `") {
            if let Some(name) = h.strip_suffix('`') {
                names.push(name.to_owned());
            }
        } else if let Some(row) = line.strip_prefix("| `{\"type\":\"") {
            if let Some((name, _)) = row.split_once('"') {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn every_client_message_is_documented_and_nothing_else() {
    let md = protocol_md();
    let code = serde_tags::<ClientMessage>();
    assert!(code.len() > 20, "parsed the serde list: {code:?}");
    assert_eq!(
        sorted(documented(section(&md, "Client messages"))),
        sorted(code),
        "PROTOCOL.md section 7 vs ClientMessage"
    );
}

#[test]
fn every_server_message_is_documented_and_nothing_else() {
    let md = protocol_md();
    let code = serde_tags::<ServerMessage>();
    assert!(code.contains(&"recording_alert".to_owned()), "{code:?}");
    assert_eq!(
        sorted(documented(section(&md, "Server messages"))),
        sorted(code),
        "PROTOCOL.md section 8 vs ServerMessage"
    );
}

#[test]
fn every_hearing_status_field_is_documented() {
    let md = protocol_md();
    let status = openhearing_signaling::HearingStatus {
        state: openhearing_signaling::HearingState::Suspended,
        reason: Some("r".into()),
        since: "2026-01-01T00:00:00Z".into(),
        adjourned_to: Some("2026-01-02T00:00:00Z".into()),
        locked: false,
        spotlight: Some(uuid::Uuid::nil()),
        rooms: Vec::new(),
        consultation_requests: Vec::new(),
        recording: true,
    };
    let value = serde_json::to_value(&status).expect("serialises");
    let server = section(&md, "Server messages");
    let from = server
        .find("**`HearingStatus`**")
        .expect("PROTOCOL.md describes HearingStatus");
    // The table runs from the heading paragraph to the next paragraph after it.
    let table = &server[from..];
    let table = &table[..table.find("\nMedia is forwarded").unwrap_or(table.len())];
    for field in value.as_object().expect("an object").keys() {
        assert!(
            table.contains(&format!("| `{field}` |")),
            "PROTOCOL.md's HearingStatus table lacks `{field}`"
        );
    }
}
