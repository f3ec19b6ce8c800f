//! The web client mirrors the wire protocol in TypeScript; this keeps its lists of
//! error codes, roles, site kinds, actions and hearing states in step with the Rust
//! ones (a code the client does not know is shown to users as a raw string and never
//! gets a translated message; a role or action it does not know gets no label or
//! control).

use openhearing_signaling::{Action, ErrorCode, HearingState, Role, SiteKind};

fn protocol_ts() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/web-client/src/protocol.ts"
    ))
    .expect("web-client/src/protocol.ts is readable")
}

/// The quoted entries of `export const NAME = [ ... ] as const;`, one per line.
fn ts_list(ts: &str, name: &str) -> Vec<String> {
    let decl = format!("export const {name} = [");
    let start = ts
        .find(&decl)
        .unwrap_or_else(|| panic!("protocol.ts declares {name}"));
    let end = start + ts[start..].find("] as const").expect("list is closed");
    ts[start..end]
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.trim()
                .strip_prefix('\'')?
                .strip_suffix("',")
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn web_client_knows_every_error_code_in_order() {
    let rust: Vec<String> = ErrorCode::ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        ts_list(&protocol_ts(), "ALL_ERROR_CODES"),
        rust,
        "web-client/src/protocol.ts ALL_ERROR_CODES vs ErrorCode::ALL"
    );
}

#[test]
fn web_client_knows_every_role_site_kind_action_and_state_in_order() {
    let ts = protocol_ts();
    let roles: Vec<String> = Role::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    assert_eq!(ts_list(&ts, "ALL_ROLES"), roles, "ALL_ROLES vs Role::ALL");
    let kinds: Vec<String> = SiteKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert_eq!(
        ts_list(&ts, "ALL_SITE_KINDS"),
        kinds,
        "ALL_SITE_KINDS vs SiteKind::ALL"
    );
    let actions: Vec<String> = Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    assert_eq!(
        ts_list(&ts, "ALL_ACTIONS"),
        actions,
        "ALL_ACTIONS vs Action::ALL"
    );
    let states: Vec<String> = HearingState::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(
        ts_list(&ts, "ALL_HEARING_STATES"),
        states,
        "ALL_HEARING_STATES vs HearingState::ALL"
    );
}
