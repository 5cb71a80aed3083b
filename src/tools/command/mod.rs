//! One external command (program and arguments) as a value.
//!
//! The same value is shown in `--dry-run` plans, in `--verbose` logs and in every error message
//! (its `Display` is the shell-quoted command line), and it is what actually runs, through duct.
//!
//! A run that fails for a transient reason (the API unreachable, a 5xx, a 429, a TLS or i/o
//! timeout: [`transient_reason`]) is repeated with bounded exponential backoff ([`Backoff`]) when
//! the command is safe to repeat: reads, `cordon`/`uncordon`, `drain`, or whatever a wrapper
//! declares with [`Command::retry`]. Each retry is reported (a warning and a `retry` event); a
//! real failure (4xx, an operation that finished with an error) is returned at once.
//!
//! This file holds the value (builders, display); running it is in `run`, its deadlines in
//! `deadline`, retrying in `retry` (what is retried: `retryable`), background and watched runs
//! in `background`, and process groups in `group`.

mod background;
mod deadline;
mod group;
mod retry;
mod retryable;
mod run;

pub use background::{Early, Running};
pub use deadline::{default_deadline, CALL_DEADLINE, OPERATION_DEADLINE};
pub use group::GroupChild;
pub use retry::{cancel_retries, resume_retries, with_retries, Backoff, Retry, RetryClock};
pub use retryable::{safe_to_repeat, transient_error, transient_reason};
pub use run::Guard;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name shown to users (`kubectl`), independent of where the binary was found.
    name: String,
    /// The executable that runs.
    path: PathBuf,
    args: Vec<String>,
    /// Whether a transient failure may be retried; `None`: decided by the verb
    /// ([`safe_to_repeat`]).
    retry: Option<bool>,
    backoff: Backoff,
    /// Part of the cleanup after Ctrl-C/SIGTERM (releasing the lock, putting strategies back):
    /// it still starts after the signal, within [`CLEANUP_DEADLINE`].
    cleanup: bool,
    /// A run still going after this long is killed and fails as a timeout.
    deadline: Option<Duration>,
}

/// How long one cleanup command may run once the run was interrupted, and how long its
/// transient failures are retried: a stopped run must end within seconds, not minutes.
pub const CLEANUP_DEADLINE: Duration = Duration::from_secs(15);

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Command {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Command {
            name: name.into(),
            path: path.into(),
            args: Vec::new(),
            retry: None,
            backoff: Backoff::DEFAULT,
            cleanup: false,
            deadline: None,
        }
    }

    /// Marks the command as cleanup: it runs even after Ctrl-C/SIGTERM (when other commands no
    /// longer start), then bounded by [`CLEANUP_DEADLINE`].
    pub fn cleanup(mut self) -> Self {
        self.cleanup = true;
        self
    }

    /// Kills a run still going after `limit` (it fails as a timeout).
    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// Declares whether a transient failure may be retried (default: by verb, [`safe_to_repeat`]).
    pub fn retry(mut self, allowed: bool) -> Self {
        self.retry = Some(allowed);
        self
    }

    /// Replaces [`Backoff::DEFAULT`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// `kubectl get pods ...`: the program and its first words, for retry messages.
    pub fn short(&self) -> String {
        let words: Vec<&String> = self
            .args
            .iter()
            .skip_while(|a| a.starts_with('-'))
            .take_while(|a| !a.starts_with('-'))
            .take(3)
            .collect();
        let mut short = self.name.clone();
        for word in &words {
            short.push(' ');
            short.push_str(&shell_quote(word));
        }
        if self.args.len() > words.len() {
            short.push_str(" ...");
        }
        short
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn get_args(&self) -> &[String] {
        &self.args
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.name))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes `word` for a POSIX shell when needed, so a printed command line can be pasted.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let cmd = Command::new("kubectl", "/usr/bin/kubectl").args([
            "get",
            "pods",
            "--field-selector=spec.nodeName=gke-a-1",
            "it's",
            "two words",
            "",
        ]);
        assert_eq!(
            cmd.to_string(),
            r#"kubectl get pods --field-selector=spec.nodeName=gke-a-1 'it'\''s' 'two words' ''"#
        );
    }
}
