//! One external command (program and arguments) as a value.
//!
//! The same value is shown in `--dry-run` plans, in `--verbose` logs and in every error message
//! (its `Display` is the shell-quoted command line), and it is what actually runs, through duct.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::errors::{Error, ExitStatusText};
use crate::report::Reporter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name shown to users (`kubectl`), independent of where the binary was found.
    name: String,
    /// The executable that runs.
    path: PathBuf,
    args: Vec<String>,
}

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
        }
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

    fn expression(&self) -> duct::Expression {
        duct::cmd(&self.path, &self.args)
            .stdin_null()
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
    }

    /// Runs the command to completion; a non-zero exit is an error carrying stderr.
    pub fn output(&self, reporter: &dyn Reporter) -> Result<Output, Error> {
        reporter.command_started(&self.to_string());
        let result = self
            .expression()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| Error::Spawn {
                command: self.to_string(),
                source,
            })?;
        let code = result.status.code();
        reporter.command_finished(&self.to_string(), code);
        let output = Output {
            stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        };
        if result.status.success() {
            Ok(output)
        } else {
            Err(Error::Exit {
                command: self.to_string(),
                status: ExitStatusText(code),
                stderr: output.stderr,
            })
        }
    }

    /// Runs the command and parses its stdout as JSON.
    pub fn json<T: DeserializeOwned>(&self, reporter: &dyn Reporter) -> Result<T, Error> {
        let output = self.output(reporter)?;
        serde_json::from_str(&output.stdout).map_err(|source| Error::Json {
            command: self.to_string(),
            source,
        })
    }

    /// Runs the command with stderr merged into stdout, calling `on_line` for each line as it is
    /// printed. A non-zero exit is an error whose "stderr" is the last lines of the output.
    pub fn stream(
        &self,
        reporter: &dyn Reporter,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), Error> {
        const KEEP: usize = 30;
        reporter.command_started(&self.to_string());
        let spawn_error = |source| Error::Spawn {
            command: self.to_string(),
            source,
        };
        let handle = self
            .expression()
            .stderr_to_stdout()
            .unchecked()
            .reader()
            .map_err(spawn_error)?;
        let mut tail: Vec<String> = Vec::new();
        {
            let mut reader = BufReader::new(&handle);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        let text = line.trim_end_matches(['\n', '\r']);
                        on_line(text);
                        tail.push(text.to_string());
                        if tail.len() > KEEP {
                            tail.remove(0);
                        }
                    }
                    Err(source) => return Err(spawn_error(source)),
                }
            }
        }
        let status = handle
            .try_wait()
            .map_err(spawn_error)?
            .map(|output| output.status);
        let code = status.and_then(|s| s.code());
        reporter.command_finished(&self.to_string(), code);
        match status {
            Some(status) if status.success() => Ok(()),
            _ => Err(Error::Exit {
                command: self.to_string(),
                status: ExitStatusText(code),
                stderr: tail.join("\n"),
            }),
        }
    }
}

impl Command {
    /// Starts the command in the background with stdout and stderr captured; the caller polls
    /// the handle (`try_wait`) and kills it if it gives up. Used for the one long-running
    /// `gcloud container operations wait` a command follows while it polls kubectl.
    pub fn start_captured(&self, reporter: &dyn Reporter) -> Result<duct::Handle, Error> {
        reporter.command_started(&self.to_string());
        self.expression()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start()
            .map_err(|source| Error::Spawn {
                command: self.to_string(),
                source,
            })
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
    use crate::report::Silent;

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

    #[test]
    fn spawn_failure_and_exit_failure_are_distinct() {
        let missing = Command::new("nope", "/nonexistent/nope").arg("x");
        match missing.output(&Silent) {
            Err(Error::Spawn { command, .. }) => assert_eq!(command, "nope x"),
            other => panic!("expected a spawn error, got {other:?}"),
        }
        let failing = Command::new("sh", "/bin/sh").args(["-c", "echo bad >&2; exit 3"]);
        match failing.output(&Silent) {
            Err(Error::Exit { status, stderr, .. }) => {
                assert_eq!(status, ExitStatusText(Some(3)));
                assert_eq!(stderr.trim(), "bad");
            }
            other => panic!("expected an exit error, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_command() {
        let cmd = Command::new("sh", "/bin/sh").args(["-c", "echo not-json"]);
        let err = cmd.json::<serde_json::Value>(&Silent).unwrap_err();
        assert!(matches!(err, Error::Json { .. }));
        assert!(err.to_string().contains("`sh -c 'echo not-json'`"));
    }

    #[test]
    fn stream_reports_lines_in_order_and_the_exit() {
        let cmd = Command::new("sh", "/bin/sh").args(["-c", "echo one; echo two >&2; exit 1"]);
        let mut lines = Vec::new();
        let err = cmd
            .stream(&Silent, |l| lines.push(l.to_string()))
            .unwrap_err();
        assert_eq!(lines, ["one", "two"]);
        assert!(matches!(err, Error::Exit { .. }));
    }
}
