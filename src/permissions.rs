//! The permission table: which role may do what, and the court-workflow settings that
//! go with it (who is admitted without waiting, who waits to be called in, who stays
//! unmuted on "mute all").
//!
//! The table is data (`[permissions]` and `[workflow]` in the configuration, shipped
//! in `config/default.toml` and overridable per deployment). Every signaling action and
//! the forwarding policy consult it through [`Permissions::allows`]; nothing about
//! roles is hard-coded elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use openhearing_signaling::{Action, Role};
use serde::{Deserialize, Serialize};

/// The embedded default configuration; only its `[permissions]` and `[workflow]`
/// sections are read here (other tables are ignored by the deserializer).
const DEFAULT_SECTIONS: &str = include_str!("../config/default.toml");

/// `[workflow]`: lobby and muting rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Roles that enter the hearing room at once; everyone else waits in the lobby.
    pub auto_admit: Vec<Role>,
    /// Roles that stay in the lobby until called in (`call_in`) and go back when
    /// dismissed; `admit_all` leaves them waiting.
    pub call_in_roles: Vec<Role>,
    /// Roles that "mute all" leaves unmuted (the bench).
    pub bench: Vec<Role>,
    /// Whether consultation requests open at once, without the judge's approval.
    pub auto_approve_consultation: bool,
    /// Roles taken into deliberation (the trial panel).
    pub deliberation_roles: Vec<Role>,
}

/// The permission table plus the workflow rules, ready for lookups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    table: BTreeMap<Role, BTreeSet<Action>>,
    workflow: WorkflowConfig,
}

impl Permissions {
    /// Builds the table; roles missing from `table` may do nothing.
    pub fn new(table: &BTreeMap<Role, Vec<Action>>, workflow: &WorkflowConfig) -> Permissions {
        Permissions {
            table: table
                .iter()
                .map(|(r, a)| (*r, a.iter().copied().collect()))
                .collect(),
            workflow: workflow.clone(),
        }
    }

    /// The shipped defaults: the `[permissions]` and `[workflow]` sections of
    /// `config/default.toml`, read here rather than through [`crate::config`] so the
    /// table does not depend on the configuration loader (which depends on it).
    pub fn defaults() -> Permissions {
        #[derive(Deserialize)]
        struct Sections {
            permissions: BTreeMap<Role, Vec<Action>>,
            workflow: WorkflowConfig,
        }
        let s: Sections = toml::from_str(DEFAULT_SECTIONS)
            .expect("config/default.toml's [permissions] and [workflow] are valid");
        Permissions::new(&s.permissions, &s.workflow)
    }

    /// Whether `role` may do `action`.
    pub fn allows(&self, role: Role, action: Action) -> bool {
        self.table.get(&role).is_some_and(|s| s.contains(&action))
    }

    /// Everything `role` may do, in table order.
    pub fn actions(&self, role: Role) -> Vec<Action> {
        self.table
            .get(&role)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `role` may publish any media at all.
    pub fn may_publish_any(&self, role: Role) -> bool {
        [
            Action::PublishAudio,
            Action::PublishVideo,
            Action::PublishScreen,
        ]
        .into_iter()
        .any(|a| self.allows(role, a))
    }

    pub fn auto_admitted(&self, role: Role) -> bool {
        self.workflow.auto_admit.contains(&role)
    }

    pub fn waits_for_call(&self, role: Role) -> bool {
        self.workflow.call_in_roles.contains(&role)
    }

    pub fn is_bench(&self, role: Role) -> bool {
        self.workflow.bench.contains(&role)
    }

    pub fn deliberates(&self, role: Role) -> bool {
        self.workflow.deliberation_roles.contains(&role)
    }

    pub fn workflow(&self) -> &WorkflowConfig {
        &self.workflow
    }

    /// The table as Markdown (roles × actions), as the README shows it.
    pub fn markdown_table(&self) -> String {
        let mut out = String::from("| role |");
        for a in Action::ALL {
            out.push_str(&format!(" {} |", a.as_str()));
        }
        out.push_str("\n|---|");
        for _ in Action::ALL {
            out.push_str(":-:|");
        }
        out.push('\n');
        for r in Role::ALL {
            out.push_str(&format!("| {} |", r.as_str()));
            for a in Action::ALL {
                out.push_str(if self.allows(r, a) { " ✓ |" } else { " |" });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_court_rules() {
        let p = Permissions::defaults();
        // Observers never publish, but everyone receives.
        assert!(!p.may_publish_any(Role::Observer));
        for r in Role::ALL {
            assert!(p.allows(r, Action::Subscribe), "{r}");
            if r != Role::Observer {
                assert!(p.allows(r, Action::PublishAudio), "{r}");
            }
        }
        // Only the presiding judge controls the lifecycle and mutes others.
        for r in Role::ALL {
            assert_eq!(
                p.allows(r, Action::ControlLifecycle),
                r == Role::PresidingJudge,
                "{r}"
            );
            assert_eq!(
                p.allows(r, Action::MuteOthers),
                r == Role::PresidingJudge,
                "{r}"
            );
        }
        // The presiding judge and the clerk run the lobby.
        for r in Role::ALL {
            let lobby = matches!(r, Role::PresidingJudge | Role::Clerk);
            assert_eq!(p.allows(r, Action::Admit), lobby, "{r}");
            assert_eq!(p.allows(r, Action::Deny), lobby, "{r}");
        }
        for r in [
            Role::PresidingJudge,
            Role::Judge,
            Role::Assessor,
            Role::Clerk,
            Role::Prosecutor,
        ] {
            assert!(p.auto_admitted(r), "{r}");
        }
        assert!(!p.auto_admitted(Role::Defendant));
        assert!(p.waits_for_call(Role::Witness) && p.waits_for_call(Role::Expert));
        assert!(p.is_bench(Role::PresidingJudge) && !p.is_bench(Role::Defendant));
    }

    #[test]
    fn defaults_read_here_equal_the_loaded_default_configuration() {
        let loaded = crate::config::Config::from_toml_str("", "defaults")
            .expect("the embedded default configuration is valid")
            .permissions();
        assert_eq!(Permissions::defaults(), loaded);
    }

    #[test]
    fn readme_shows_the_shipped_table() {
        // The README's permission table is generated from the defaults; keep it so.
        let readme = include_str!("../README.md");
        let table = Permissions::defaults().markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's permission table differs from config/default.toml; paste:\n{table}"
        );
    }
}
