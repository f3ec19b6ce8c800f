//! The web client mirrors the wire protocol in TypeScript; this keeps the error codes
//! of the two in step (a code the client does not know is shown to users as a raw
//! string and never gets a translated message).

use openhearing_signaling::ErrorCode;

#[test]
fn web_client_knows_every_error_code_in_order() {
    let ts = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/web-client/src/protocol.ts"
    ))
    .expect("web-client/src/protocol.ts is readable");
    let start = ts
        .find("export const ALL_ERROR_CODES = [")
        .expect("protocol.ts declares ALL_ERROR_CODES");
    let end = start + ts[start..].find("] as const").expect("list is closed");
    let web: Vec<String> = ts[start..end]
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.trim()
                .strip_prefix('\'')?
                .strip_suffix("',")
                .map(str::to_owned)
        })
        .collect();
    let rust: Vec<String> = ErrorCode::ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        web, rust,
        "web-client/src/protocol.ts ALL_ERROR_CODES vs ErrorCode::ALL"
    );
}
