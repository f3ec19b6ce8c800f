//! Human output of the commands: the tables and lines they print, or with `--json`
//! the value as pretty JSON. Only formatting lives here, so what a command prints
//! is in one place.

use chrono::{DateTime, Utc};

use super::CliError;
use crate::api::admin::dto::{AuditTrail, HearingDetail, HearingLinks, IssuedLink};
use crate::model::{Hearing, Participant};

pub(super) fn print_links(links: &HearingLinks) {
    println!(
        "Hearing {}  {}  {}",
        links.hearing_id, links.case_number, links.title
    );
    for p in &links.participants {
        println!();
        println!("  {:<16} {}  ({})", p.role.as_str(), p.name, p.site);
        println!("  {}", p.join_url);
    }
}

pub(super) fn print_issued(link: &IssuedLink) {
    let p = &link.participant;
    println!(
        "Participant {}  {}  {}  ({})  link version {}",
        p.id,
        p.role.as_str(),
        p.name,
        p.site,
        p.link_version
    );
    println!("  {}", link.join_url);
}

pub(super) fn print_hearing(d: &HearingDetail) {
    let h = &d.hearing;
    println!("Hearing     {}", h.id);
    println!("Case number {}", h.case_number);
    println!("Title       {}", h.title);
    println!("Created     {}", h.created_at.to_rfc3339());
    if let Some(t) = h.scheduled_at {
        println!("Scheduled   {}", t.to_rfc3339());
    }
    let s = &h.status;
    print!("State       {} since {}", s.state, s.since.to_rfc3339());
    if let Some(r) = &s.reason {
        print!(" ({r})");
    }
    if let Some(t) = s.adjourned_to {
        print!(", adjourned to {}", t.to_rfc3339());
    }
    println!("{}", if s.locked { ", locked" } else { "" });
    println!();
    println!("  {:<10}  SITE", "KIND");
    for site in &h.sites {
        println!("  {:<10}  {}", site.kind.as_str(), site.name);
    }
    println!();
    println!(
        "  {:<36}  {:<17}  {:<9}  {:<5}  {:>4}  {:<30}  SITE",
        "PARTICIPANT", "ROLE", "ADMISSION", "MUTED", "LINK", "NAME"
    );
    for p in &h.participants {
        println!(
            "  {:<36}  {:<17}  {:<9}  {:<5}  {:>4}  {:<30}  {}",
            p.id,
            p.role.as_str(),
            p.admission.as_str(),
            if p.muted { "yes" } else { "no" },
            p.link_version,
            p.name,
            p.site
        );
    }
    if !d.state_history.is_empty() {
        println!();
        println!("  STATE HISTORY");
        for r in &d.state_history {
            let mut line = format!(
                "  #{} {} {} by {}",
                r.seq,
                r.at.to_rfc3339(),
                r.state,
                r.actor
            );
            if let Some(reason) = &r.reason {
                line.push_str(&format!(" ({reason})"));
            }
            if let Some(t) = r.adjourned_to {
                line.push_str(&format!(", to {}", t.to_rfc3339()));
            }
            println!("{line}");
        }
    }
}

pub(super) fn print_list(hearings: &[Hearing]) {
    if hearings.is_empty() {
        println!("no hearings");
        return;
    }
    println!(
        "{:<36}  {:<20}  {:<10}  {:<20}  {:>6}  TITLE",
        "ID", "CASE NUMBER", "STATE", "CREATED", "PEOPLE"
    );
    for h in hearings {
        println!(
            "{:<36}  {:<20}  {:<10}  {:<20}  {:>6}  {}",
            h.id,
            h.case_number,
            h.status.state.as_str(),
            h.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            h.participants.len(),
            h.title
        );
    }
}

pub(super) fn print_audit(trail: &AuditTrail) {
    println!("Audit trail of hearing {}", trail.hearing_id);
    for e in &trail.entries {
        println!(
            "  #{:<4} {}  {:<48}  {:<18}  {}  {}",
            e.seq,
            e.at.to_rfc3339(),
            e.actor,
            e.action,
            e.subject.as_deref().unwrap_or("-"),
            e.details
        );
    }
    match &trail.verification.problem {
        None => println!(
            "chain intact: {} entries, head {}",
            trail.head.count, trail.head.hash
        ),
        Some(p) => println!("chain BROKEN: {p}"),
    }
}

/// `admin-key list`: the stored keys (`name`, `created_at`), and whether the
/// configuration has one too (`auth.admin_api_key`, shown in the table only).
pub(super) fn print_admin_keys(
    keys: &[(String, DateTime<Utc>)],
    config_key: bool,
    json: bool,
) -> Result<(), CliError> {
    if json {
        let list: Vec<_> = keys
            .iter()
            .map(|(name, at)| serde_json::json!({ "name": name, "created_at": at }))
            .collect();
        return print_json(&list);
    }
    if keys.is_empty() {
        println!("no admin keys in the database");
    }
    for (name, at) in keys {
        println!("{name:<24}  created {}", at.to_rfc3339());
    }
    if config_key {
        println!("{:<24}  auth.admin_api_key in the configuration", "config");
    }
    Ok(())
}

/// After `hearing remove-participant`.
pub(super) fn print_removed(p: &Participant) {
    println!(
        "{} ({}, {}) was removed; their link no longer works",
        p.name, p.role, p.id
    );
}

pub(super) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::UnexpectedResponse {
        status: 0,
        detail: e.to_string(),
    })?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as JSON or with `table`.
pub(super) fn show<T: serde::Serialize>(
    value: &T,
    json: bool,
    table: impl Fn(&T),
) -> Result<(), CliError> {
    if json {
        print_json(value)
    } else {
        table(value);
        Ok(())
    }
}
