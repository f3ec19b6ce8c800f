//! The command line's value parsers: text given on the command line to the typed
//! values the commands take (ids, times, states, `NAME=KIND` sites, `NAME:ROLE:SITE`
//! participants, key names). Each error names the offending text and shows a valid
//! example, since clap prints it as is.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::CliError;
use crate::model::{HearingState, NewParticipant, Role, Site, SiteKind};

/// Parses a hearing id (a UUID).
pub fn parse_hearing_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text.trim()).map_err(|_| {
        format!("`{text}` is not a hearing id; expected a UUID like 67e55044-10b1-426f-9247-bb680e5fe0c8 (see `openhearing hearing list`)")
    })
}

/// Parses a participant id (a UUID).
pub fn parse_participant_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text.trim()).map_err(|_| {
        format!(
            "`{text}` is not a participant id; expected a UUID (see `openhearing hearing get ID`)"
        )
    })
}

/// Parses an RFC 3339 date and time.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 date and time like 2026-12-01T08:00:00+07:00: {e}")
        })
}

/// Parses a hearing state's wire name.
pub fn parse_state(text: &str) -> Result<HearingState, String> {
    text.trim().parse().map_err(|e| format!("{e}"))
}

/// Parses `NAME=KIND`, splitting at the last `=`.
pub fn parse_site_spec(spec: &str) -> Result<Site, String> {
    let Some((name, kind)) = spec.rsplit_once('=') else {
        return Err(format!(
            "site `{spec}`: expected NAME=KIND, e.g. \"Phòng xử án 1=central\""
        ));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("site `{spec}`: the name (before '=') is empty"));
    }
    let kind: SiteKind = kind
        .trim()
        .parse()
        .map_err(|e| format!("site `{spec}`: {e}"))?;
    Ok(Site {
        name: name.to_owned(),
        kind,
    })
}

/// Checks an admin key name: 1-64 letters, digits, `.`, `_` or `-`.
pub fn parse_key_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err("the key name must be 1 to 64 characters long".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "`{name}`: a key name may contain only letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(name.to_owned())
}

/// Parses `NAME:ROLE:SITE`, splitting at the first two colons only.
pub fn parse_participant_spec(spec: &str) -> Result<NewParticipant, CliError> {
    let bad = |reason: String| CliError::BadParticipant {
        spec: spec.to_owned(),
        reason,
    };
    let mut parts = spec.splitn(3, ':');
    let (Some(name), Some(role), Some(site)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(
            "expected NAME:ROLE:SITE, e.g. \"Nguyễn Văn A:presiding_judge:Phòng xử án 1\"".into(),
        ));
    };
    let (name, role, site) = (name.trim(), role.trim(), site.trim());
    if name.is_empty() {
        return Err(bad("the name (before the first ':') is empty".into()));
    }
    if site.is_empty() {
        return Err(bad("the site (after the second ':') is empty".into()));
    }
    let role: Role = role
        .parse()
        .map_err(|e: openhearing_signaling::protocol::UnknownRole| bad(e.to_string()))?;
    Ok(NewParticipant {
        name: name.to_owned(),
        role,
        site: site.to_owned(),
        party: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_spec() {
        let p = parse_participant_spec("Nguyễn Văn A:presiding_judge:Phòng xử án 1").unwrap();
        assert_eq!(p.name, "Nguyễn Văn A");
        assert_eq!(p.role, Role::PresidingJudge);
        assert_eq!(p.site, "Phòng xử án 1");

        // The site may contain colons.
        let p = parse_participant_spec("B:defendant:Trại tạm giam: phân khu 2:A").unwrap();
        assert_eq!(p.site, "Trại tạm giam: phân khu 2:A");

        for (spec, needle) in [
            ("only-a-name", "expected NAME:ROLE:SITE"),
            ("A:judge", "expected NAME:ROLE:SITE"),
            ("A:king:Room 1", "unknown role `king`"),
            (":judge:Room 1", "name"),
            ("A:judge:  ", "site"),
        ] {
            let e = parse_participant_spec(spec).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("participant `{spec}`")), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
    }
}
