//! The process's open-file limit (`RLIMIT_NOFILE`): raised from its soft value to the
//! hard one at start, and read to size the connection cap.
//!
//! Every connection, media port, database and recording file is a descriptor; the
//! soft limit a service starts with is often 1,024 (systemd's default) while the hard
//! limit allows far more, and a process may raise its own soft limit up to the hard
//! one without privileges. rustix makes the calls safe (the crate forbids `unsafe`).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// What [`raise`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before; `None`: unlimited.
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
    /// The hard limit (the most an unprivileged process can raise to).
    pub hard: Option<u64>,
}

impl FdLimit {
    /// Whether [`raise`] changed the soft limit.
    pub fn raised(&self) -> bool {
        self.before != self.now
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. An unlimited hard limit (some
/// systems) is not a value the kernel accepts for the soft one, so then the soft
/// limit is left as it is.
pub fn raise() -> std::io::Result<FdLimit> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let mut limit = FdLimit {
        before: current,
        now: current,
        hard: maximum,
    };
    if maximum.is_some() && current != maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: maximum,
                maximum,
            },
        )?;
        limit.now = getrlimit(Resource::Nofile).current;
    }
    Ok(limit)
}

/// The current soft limit; `None`: unlimited.
pub fn current() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Logs what [`raise`] did (or could not do), once at start.
pub fn log(result: &std::io::Result<FdLimit>) {
    let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string());
    match result {
        Ok(l) if l.raised() => tracing::info!(
            "raised the open-file limit (RLIMIT_NOFILE) from {} to the hard limit {}",
            show(l.before),
            show(l.now)
        ),
        Ok(l) => tracing::info!(
            "open-file limit (RLIMIT_NOFILE) {} (hard limit {})",
            show(l.now),
            show(l.hard)
        ),
        Err(e) => tracing::warn!(
            "cannot raise the open-file limit (RLIMIT_NOFILE) from {}: {e}",
            show(current())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_to_the_hard_one() {
        let Rlimit { maximum, .. } = getrlimit(Resource::Nofile);
        let hard = maximum.expect("a finite hard limit on the test machine");
        // Start below the hard limit, as a service under systemd does (only just
        // below: the other tests of this process keep running meanwhile).
        let low = hard - 1;
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(low),
                maximum,
            },
        )
        .expect("lowering the soft limit is always allowed");
        let l = raise().expect("raising to the hard limit is allowed");
        assert_eq!(l.before, Some(low));
        assert_eq!(l.now, Some(hard));
        assert!(l.raised());
        assert_eq!(current(), Some(hard));
        // Once raised, raising again changes nothing.
        assert!(!raise().expect("raise again").raised());
    }
}
