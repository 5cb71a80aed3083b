//! The command value itself: program, arguments, and how it may run (retries and their
//! [`Backoff`], a deadline, whether it is part of the cleanup), shown the same way in plans,
//! logs and errors.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name shown to users (`kubectl`), independent of where the binary was found.
    pub(super) name: String,
    /// The executable that runs.
    pub(super) path: PathBuf,
    pub(super) args: Vec<String>,
    /// Whether a transient failure may be retried; `None`: decided by the verb
    /// ([`safe_to_repeat`]).
    pub(super) retry: Option<bool>,
    pub(super) backoff: Backoff,
    /// Part of the cleanup after Ctrl-C/SIGTERM (releasing the lock, putting strategies back):
    /// it still starts after the signal, within [`CLEANUP_DEADLINE`].
    pub(super) cleanup: bool,
    /// A run still going after this long is killed and fails as a timeout.
    pub(super) deadline: Option<Duration>,
}

/// How long one cleanup command may run once the run was interrupted, and how long its
/// transient failures are retried: a stopped run must end within seconds, not minutes.
pub const CLEANUP_DEADLINE: Duration = Duration::from_secs(15);

/// What a finished command printed on stdout (its stderr goes into the error when it fails),
/// and on stderr (a command may report a failure there and still exit 0).
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

/// The words of `args` that are not flags (`get`, `pods` of `get pods -o json`).
pub fn words(args: &[String]) -> Vec<&str> {
    args.iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect()
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

/// How a transient failure is retried: `first`, doubling up to `max` between attempts, and no
/// new attempt once `budget` has passed since the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub budget: Duration,
}

impl Backoff {
    /// 1 s doubling to 30 s, for up to 10 minutes in all: a zonal cluster's control plane is
    /// unreachable for several minutes while GKE upgrades it, and a migration should ride that
    /// out rather than stop half-way.
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(30),
        budget: Duration::from_secs(600),
    };
}
