//! The errors a user can see at the process boundary, each with a stable exit code.
//!
//! Command code uses `anyhow` for context; anything that must map to a specific exit code is one of
//! these variants somewhere in the chain (see [`exit_code`]).

use std::fmt;

/// Exit codes, stable across releases so scripts can rely on them.
pub mod code {
    /// Anything not covered below.
    pub const FAILURE: u8 = 1;
    /// Invalid flags or arguments (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// A safety check refused to go on; nothing unsafe was done.
    pub const REFUSED: u8 = 3;
    /// Something did not happen within its timeout (nodes, drain, settle).
    pub const TIMEOUT: u8 = 4;
    /// A kubectl or gcloud command failed or printed something unexpected.
    pub const TOOL_FAILED: u8 = 5;
    /// kubectl or gcloud is not installed.
    pub const TOOL_MISSING: u8 = 6;
    /// Stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` {status}{}", stderr_suffix(.stderr))]
    Exit {
        command: String,
        status: ExitStatusText,
        stderr: String,
    },
    #[error("`{command}` printed output that is not the expected JSON: {source}")]
    Json {
        command: String,
        #[source]
        source: serde_json::Error,
    },
    /// A command kept failing for a transient reason until the retry budget ran out.
    #[error("{last}\n    ({reason}: still failing after {attempts} attempts over {elapsed})")]
    GaveUp {
        last: Box<Error>,
        reason: String,
        attempts: u32,
        elapsed: String,
    },
    #[error("{tool} was not found on PATH; {hint}")]
    ToolMissing {
        tool: &'static str,
        hint: &'static str,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Timeout(String),
    /// A command still running at its deadline was stopped (a hung kubectl or gcloud).
    #[error(
        "`{command}` did not finish within {limit}: stopped (it hung, or the API it talks to did)"
    )]
    Hung { command: String, limit: String },
    /// Ctrl-C or SIGTERM stopped a command, or kept one from starting.
    #[error("{0}")]
    Interrupted(String),
    /// A migration step failed: the message says which step, why, the state, and what to do next.
    #[error("{}", step_message(.step, .cause, .state, .next, *.code))]
    Step {
        step: String,
        cause: String,
        state: String,
        next: String,
        code: u8,
    },
}

/// How a command ended, for messages: "exited with status 1", "was killed by signal 15
/// (SIGTERM)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatusText(pub Option<i32>, pub Option<i32>);

impl ExitStatusText {
    /// The exit code or the signal of `status` (neither when it is unknown).
    pub fn of(status: Option<std::process::ExitStatus>) -> Self {
        use std::os::unix::process::ExitStatusExt as _;
        ExitStatusText(
            status.and_then(|s| s.code()),
            status.and_then(|s| s.signal()),
        )
    }
}

#[cfg(test)]
impl ExitStatusText {
    /// A plain exit code.
    pub fn code(code: i32) -> Self {
        ExitStatusText(Some(code), None)
    }
}

impl fmt::Display for ExitStatusText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(i32, &str); 6] = [
            (1, "SIGHUP"),
            (2, "SIGINT"),
            (6, "SIGABRT"),
            (9, "SIGKILL"),
            (13, "SIGPIPE"),
            (15, "SIGTERM"),
        ];
        match (self.0, self.1) {
            (Some(code), _) => write!(f, "exited with status {code}"),
            (None, Some(signal)) => match NAMES.iter().find(|(n, _)| *n == signal) {
                Some((_, name)) => write!(f, "was killed by signal {signal} ({name})"),
                None => write!(f, "was killed by signal {signal}"),
            },
            (None, None) => write!(f, "ended in an unknown way"),
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        " (no output on stderr)".to_string()
    } else {
        format!(":\n{}", indent(trimmed, "    "))
    }
}

fn step_message(step: &str, cause: &str, state: &str, next: &str, code: u8) -> String {
    if code == code::INTERRUPTED {
        return format!(
            "interrupted during step {step}: {cause}\n  cluster state: {state}\n  next: {next}"
        );
    }
    format!("{step} failed: {cause}\n  cluster state: {state}\n  next: {next}")
}

/// Indents every line of `text` with `prefix`.
pub fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spawn { .. } | Error::Exit { .. } | Error::Json { .. } => code::TOOL_FAILED,
            Error::ToolMissing { .. } => code::TOOL_MISSING,
            Error::Usage(_) => code::USAGE,
            Error::Refused(_) => code::REFUSED,
            Error::Timeout(_) | Error::Hung { .. } => code::TIMEOUT,
            Error::Interrupted(_) => code::INTERRUPTED,
            Error::Step { code, .. } => *code,
            Error::GaveUp { last, .. } => last.exit_code(),
        }
    }
}

/// The exit code for an error chain: that of the outermost [`Error`] in it, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Error>())
        .map_or(code::FAILURE, Error::exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_comes_from_the_outermost_known_error() {
        let err = anyhow::Error::new(Error::Timeout("late".into())).context("while waiting");
        assert_eq!(exit_code(&err), code::TIMEOUT);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), code::FAILURE);
    }

    #[test]
    fn exit_error_shows_command_and_indented_stderr() {
        let err = Error::Exit {
            command: "kubectl get nodes".into(),
            status: ExitStatusText::code(1),
            stderr: "error: boom\nsecond line\n".into(),
        };
        assert_eq!(
            err.to_string(),
            "`kubectl get nodes` exited with status 1:\n    error: boom\n    second line"
        );
    }
}
