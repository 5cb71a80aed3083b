//! Deadlines: how long a command may run before it counts as hung ([`default_deadline`], a
//! caller's own, shorter for cleanup after an interruption) and the error of one killed at it.

use std::time::Duration;

use super::retryable::safe_to_repeat;
use super::{Command, CLEANUP_DEADLINE};
use crate::errors::Error;
use crate::interrupt;
use crate::report::human_duration;

/// How long a call that only asks or changes one thing may take before it counts as hung: a
/// `kubectl get` of every pod of a large cluster takes seconds, a GKE describe one.
pub const CALL_DEADLINE: Duration = Duration::from_secs(300);
/// A gcloud command that waits for a GKE operation (a pool's create, delete or update) when
/// the caller gives no deadline of its own.
pub const OPERATION_DEADLINE: Duration = Duration::from_secs(3600);

/// The deadline of a command whose caller set none: `kubectl drain` none (its caller derives
/// one from `--drain-timeout`), other kubectl calls [`CALL_DEADLINE`], gcloud reads and
/// `--async` calls [`CALL_DEADLINE`], other gcloud calls (they wait for GKE's operation)
/// [`OPERATION_DEADLINE`].
pub fn default_deadline(name: &str, args: &[String]) -> Option<Duration> {
    let has = |word: &str| args.iter().any(|a| a == word);
    match name {
        "kubectl" if has("drain") => None,
        "gcloud" if !safe_to_repeat(name, args) && !has("--async") => Some(OPERATION_DEADLINE),
        _ => Some(CALL_DEADLINE),
    }
}

impl Command {
    /// The deadline of one run: its own (the caller's, for commands whose length depends on a
    /// flag), else [`default_deadline`]; shortened to [`CLEANUP_DEADLINE`] for cleanup after an
    /// interruption.
    pub(super) fn run_deadline(&self) -> Option<Duration> {
        let own = self
            .deadline
            .or_else(|| default_deadline(&self.name, &self.args));
        if self.cleanup && interrupt::interrupted() {
            return Some(own.map_or(CLEANUP_DEADLINE, |d| d.min(CLEANUP_DEADLINE)));
        }
        own
    }

    /// The error of a run killed at its deadline.
    pub(super) fn deadline_error(&self) -> Error {
        Error::Hung {
            command: self.short(),
            limit: human_duration(self.run_deadline().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;
    use crate::tools::command::Backoff;
    use std::time::Instant;

    /// A run past its deadline is stopped at the deadline, with whatever it started (its process
    /// group: here a shell's `sleep`, which holds the output pipe), and fails as hung; a command
    /// safe to repeat is run again; one that ends in time is not touched.
    #[test]
    fn a_deadline_stops_a_hung_child_and_its_children() {
        let started = Instant::now();
        let hung = Command::new("kubectl", "/bin/sh")
            .args(["-c", "sleep 30; echo late"])
            .deadline(Duration::from_millis(300));
        let err = hung.output(&Silent).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(20), "not stopped");
        assert!(matches!(err, Error::Hung { .. }), "{err:?}");
        assert!(
            err.to_string().contains("did not finish within 0.3s"),
            "{err}"
        );
        let err = hung.json::<serde_json::Value>(&Silent).unwrap_err();
        assert!(matches!(err, Error::Hung { .. }), "{err:?}");
        let mut lines = Vec::new();
        let err = hung
            .stream(&Silent, |l| lines.push(l.to_string()))
            .unwrap_err();
        assert!(
            matches!(err, Error::Hung { .. }) && lines.is_empty(),
            "{err:?}"
        );
        let retried = hung.clone().retry(true).backoff(Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(10),
            budget: Duration::from_millis(500),
        });
        match retried.output(&Silent).unwrap_err() {
            Error::GaveUp { last, attempts, .. } => {
                assert!(
                    matches!(*last, Error::Hung { .. }) && attempts >= 2,
                    "{last:?}"
                )
            }
            other => panic!("not retried: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(25), "not stopped");
        let quick = Command::new("kubectl", "/bin/sh")
            .args(["-c", "echo '{}'"])
            .deadline(Duration::from_secs(30));
        assert!(quick.json::<serde_json::Value>(&Silent).is_ok());
    }

    #[test]
    fn every_command_has_a_deadline_but_a_drain_left_to_its_caller() {
        let words = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            default_deadline("kubectl", &words(&["get", "pods"])),
            Some(CALL_DEADLINE)
        );
        assert_eq!(default_deadline("kubectl", &words(&["drain", "n1"])), None);
        assert_eq!(
            default_deadline(
                "gcloud",
                &words(&["container", "clusters", "describe", "c"])
            ),
            Some(CALL_DEADLINE)
        );
        assert_eq!(
            default_deadline(
                "gcloud",
                &words(&["container", "node-pools", "create", "p"])
            ),
            Some(OPERATION_DEADLINE)
        );
        assert_eq!(
            default_deadline(
                "gcloud",
                &words(&["container", "clusters", "upgrade", "c", "--async"])
            ),
            Some(CALL_DEADLINE)
        );
    }
}
